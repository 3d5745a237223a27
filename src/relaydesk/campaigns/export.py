"""A campaign's per-recipient outcome as a CSV file that opens correctly in a spreadsheet.

One row per recipient in the order they were pasted, written in chunks so that a
campaign of any size streams without being held in memory; UTF-8 with a BOM and
formula-safe cells (`core.csvfile`).
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select

from relaydesk.campaigns.models import Recipient
from relaydesk.campaigns.service import recipient_state
from relaydesk.core.csvfile import BOM
from relaydesk.core.csvfile import line as _line
from relaydesk.core.csvfile import safe as safe  # the name the report used before the move
from relaydesk.core.db import session_scope
from relaydesk.messaging import queries

CHUNK = 1000
COLUMNS = (
    "recipient_id",
    "input",
    "number",
    "status",
    "reason",
    "message_sid",
    "error_code",
    "error_meaning",
    "queued_at",
    "updated_at",
)


def recipients_csv(batch_id: int) -> Iterator[str]:
    """The file's text, header first, a chunk of recipients at a time (own sessions)."""
    yield BOM + _line(list(COLUMNS))
    after = 0
    while True:
        with session_scope(write=False) as session:
            rows = list(
                session.scalars(
                    select(Recipient)
                    .where(Recipient.batch_id == batch_id, Recipient.id > after)
                    .order_by(Recipient.id)
                    .limit(CHUNK)
                )
            )
            states = queries.delivery_states(
                session, [r.message_id for r in rows if r.message_id is not None]
            )
        if not rows:
            return
        lines = []
        for r in rows:
            message = states.get(r.message_id) if r.message_id else None
            lines.append(
                _line(
                    [
                        r.id,
                        r.input,
                        r.number,
                        recipient_state(r.status, message),
                        r.reason,
                        message["sid"] if message else None,
                        message["error_code"] if message else None,
                        message["error_message"] if message else None,
                        r.claimed_at,
                        message["updated_at"] if message else r.claimed_at,
                    ]
                )
            )
        yield "".join(lines)
        after = rows[-1].id
