"""Scheduled single messages: the ones still waiting for their time, and canceling one."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from relaydesk.core import audit
from relaydesk.core.db import utcnow
from relaydesk.core.errors import Conflict, NotFound
from relaydesk.core.i18n import N_
from relaydesk.messaging.models import Message, MessageStatus


def list_scheduled(session: Session, limit: int = 100) -> list[Message]:
    """Messages waiting for their send time, soonest first."""
    rows = session.scalars(
        select(Message)
        .where(Message.status == MessageStatus.SCHEDULED)
        .order_by(Message.scheduled_at, Message.id)
        .limit(limit)
    ).all()
    return list(rows)


def cancel(session: Session, message_id: int, actor: str) -> Message:
    """Cancel a scheduled message that has not been handed to Twilio (audited)."""
    now = utcnow()
    # The delivery claims a due message with the same condition: exactly one of us wins.
    result = session.execute(
        update(Message)
        .where(Message.id == message_id, Message.status == MessageStatus.SCHEDULED)
        .values(
            status=MessageStatus.CANCELED,
            next_attempt_at=None,
            status_changed_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    message = session.get(Message, message_id, populate_existing=True)
    if message is None:
        raise NotFound(N_("Message %(id)s does not exist"), params={"id": message_id})
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(
            N_(
                "Message %(id)s is not waiting for its send time (its status is "
                "%(status)s): only a scheduled message that was not sent yet can be canceled"
            ),
            params={"id": message_id, "status": str(message.status)},
            code="not_scheduled",
        )
    audit.record(
        session,
        actor,
        "message.cancel",
        f"message:{message_id}",
        {
            "participant": message.participant,
            "scheduled_at": message.scheduled_at.isoformat() if message.scheduled_at else None,
        },
    )
    return message
