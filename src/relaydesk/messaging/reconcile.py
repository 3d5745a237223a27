"""Asking Twilio for statuses we never heard: callbacks lost while the server was down.

Twilio does not retry a status callback that failed, so a message can stay "sent" here
while Twilio knows it was delivered. Following Twilio's advice, a message whose status
is not final is fetched a few times after sending (STATUS_CHECK_AFTER_SECONDS, by
default 10 minutes, 1 hour, 12 hours and 24 hours); what changed is recorded like a
callback (kept as an event, applied only forwards), and the checks stop at a final
status or after the last step.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update

from relaydesk.channels.twilio.gateway import GatewayError, TwilioGateway
from relaydesk.channels.twilio.parsing import StatusRecord
from relaydesk.core.config import get_settings
from relaydesk.core.db import Base, session_scope, utcnow
from relaydesk.messaging.ingest import record_statuses
from relaydesk.messaging.models import Message
from relaydesk.messaging.status import FINAL

log = logging.getLogger(__name__)

CHECKS_PER_RUN = 200  # Twilio calls per run at most (the run repeats every minute)
CHECK_LEASE = timedelta(minutes=5)


def first_check(sent_at: datetime) -> datetime | None:
    """When to ask first about a message Twilio accepted at `sent_at`."""
    return next_check(sent_at, sent_at)


def next_check(sent_at: datetime, now: datetime) -> datetime | None:
    """The next step of the schedule after `now`, or None when the schedule is over."""
    for step in get_settings().status_check_after_seconds:
        due = sent_at + timedelta(seconds=step)
        if due > now:
            return due
    return None


def _sent_at(row: Any) -> datetime:
    """When the message went to Twilio, as near as the row tells (send time if scheduled)."""
    created: datetime = row.created_at
    return max(created, row.scheduled_at or created)


def check_due(gateway: TwilioGateway, limit: int = CHECKS_PER_RUN) -> int:
    """Fetch the due messages from Twilio, record changed statuses; returns how many changed."""
    now = utcnow()
    with session_scope() as session:
        # Callbacks made these final in the meantime: nothing to ask.
        session.execute(
            update(Message)
            .where(Message.status_check_at <= now, Message.status.in_(FINAL))
            .values(status_check_at=None)
            .execution_options(synchronize_session=False)
        )
        ids = list(
            session.scalars(
                select(Message.id)
                .where(Message.status_check_at <= now)
                .order_by(Message.status_check_at)
                .limit(limit)
            )
        )
        # Claimed by moving the check later: a second run (another worker, the start-up
        # sweep beside the minute's) skips them; a run that dies leaves them for later.
        due = session.execute(
            update(Message)
            .where(Message.id.in_(ids), Message.status_check_at <= now)
            .values(status_check_at=now + CHECK_LEASE)
            .returning(
                Message.id,
                Message.sid,
                Message.status,
                Message.created_at,
                Message.scheduled_at,
            )
            .execution_options(synchronize_session=False)
        ).all()
    if not due:
        return 0
    changed: list[StatusRecord] = []
    later: list[dict[str, Any]] = []
    for row in due:
        again = next_check(_sent_at(row), now)
        if row.sid is None:
            later.append({"mid": row.id, "at": None})
            continue
        try:
            remote = gateway.fetch_message(row.sid)
        except GatewayError as exc:
            if exc.status == 404:
                again = None  # Twilio does not know it (deleted): nothing more to learn
            log.warning("status check of %s failed: %s", row.sid, exc.message)
            later.append({"mid": row.id, "at": again})
            continue
        if remote.status != row.status:
            changed.append(
                StatusRecord(
                    sid=row.sid,
                    status=remote.status,
                    error_code=remote.error_code,
                    raw={
                        "MessageSid": row.sid,
                        "MessageStatus": remote.status,
                        "ErrorCode": str(remote.error_code or ""),
                        "Source": "status check",
                    },
                    idempotency_token=None,
                )
            )
        later.append({"mid": row.id, "at": None if remote.status in FINAL else again})
    with session_scope() as session:
        moved = record_statuses(session, changed)
        session.connection().execute(_reschedule, later)
    if changed:
        log.info("status checks: %d of %d messages had changed at Twilio", len(changed), len(due))
    return moved


_messages = Base.metadata.tables["messages"]
_reschedule = (
    update(_messages)
    .where(_messages.c.id == bindparam("mid"))
    .values(status_check_at=bindparam("at"))
)
