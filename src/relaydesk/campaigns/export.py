"""A campaign's per-recipient outcome as a CSV file that opens correctly in a spreadsheet.

UTF-8 with a byte-order mark (Excel then reads Polish letters right), one row per
recipient in the order they were pasted, written in chunks so that a campaign of any
size streams without being held in memory. A cell that begins with `=`, `+`, `-`, `@`,
a tab or a carriage return gets a leading apostrophe (OWASP's rule against formula
injection): a spreadsheet shows it as text and never evaluates it. E.164 numbers begin
with `+`, so they read '+48600100200 — the plus kept, not turned into a sum.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select

from relaydesk.campaigns.models import Recipient
from relaydesk.campaigns.service import recipient_state
from relaydesk.core.db import session_scope
from relaydesk.messaging import queries

CHUNK = 1000
BOM = "\ufeff"
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
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe(value: Any) -> str:
    """One cell as text a spreadsheet will not run as a formula."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _line(cells: list[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([safe(cell) for cell in cells])
    return out.getvalue()


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
