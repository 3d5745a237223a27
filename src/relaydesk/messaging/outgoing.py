"""Messaging's events for outgoing webhooks, with the objects as the API shows them.

Each function is called in the transaction of the change, with the rows the caller
already has, and costs nothing beyond a cached look-up when no endpoint subscribes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relaydesk.core import events
from relaydesk.messaging.models import Conversation, Message


def _message_out() -> Any:
    # messaging.schemas imports the service, which imports ingest: import it when used.
    from relaydesk.messaging.schemas import MessageOut

    return MessageOut


def received(session: Session, rows: Sequence[dict[str, Any]], ids: dict[str, int]) -> None:
    """message.received for inbound rows just inserted (`ids`: SID -> new row id)."""
    if not ids or not events.wanted("message.received", session):
        return
    out = _message_out()
    items = []
    for row in rows:
        message_id = ids.get(row["sid"])
        if message_id is None:
            continue
        data = out.model_validate({**row, "id": message_id}).model_dump(mode="json", by_alias=True)
        items.append((message_id, row["participant"], data))
    items.sort(key=lambda item: item[0])
    events.emit(session, "message.received", [(key, data) for _, key, data in items])


def messages(session: Session, event_type: str, message_ids: Sequence[int]) -> None:
    """message.sent / message.status for these messages, as they stand in this transaction."""
    if not message_ids or not events.wanted(event_type, session):
        return
    out = _message_out()
    rows = session.scalars(
        select(Message)
        .where(Message.id.in_(sorted(set(message_ids))))
        .order_by(Message.id)
        .execution_options(populate_existing=True)
    )
    events.emit(
        session,
        event_type,
        [
            (row.participant, out.model_validate(row).model_dump(mode="json", by_alias=True))
            for row in rows
        ],
    )


def conversation(
    session: Session, event_type: str, items: Sequence[tuple[str, dict[str, Any]]]
) -> None:
    """conversation.status / conversation.assigned: (participant, what changed) pairs.

    The data is the conversation's state as `GET /api/conversations/{participant}` shows
    it (status, snooze, owner, priority) and `change`: from what to what, by whom.
    """
    if not items or not events.wanted(event_type, session):
        return
    from relaydesk.messaging.states import user_name

    participants = sorted({participant for participant, _ in items})
    first: dict[str, Conversation] = {}
    for row in session.scalars(
        select(Conversation)
        .where(Conversation.participant.in_(participants))
        .order_by(Conversation.id)
        .execution_options(populate_existing=True)
    ):
        first.setdefault(row.participant, row)
    emitted = []
    for participant, change in items:
        found: Conversation | None = first.get(participant)
        if found is None:
            continue
        emitted.append(
            (
                participant,
                {
                    "participant": participant,
                    "status": found.status.value,
                    "snoozed_until": found.snoozed_until.isoformat()
                    if found.snoozed_until
                    else None,
                    "assignee_id": found.assignee_id,
                    "assignee": user_name(session, found.assignee_id),
                    "priority": found.priority.value,
                    "change": change,
                },
            )
        )
    events.emit(session, event_type, emitted)
