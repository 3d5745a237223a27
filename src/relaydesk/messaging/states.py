"""A conversation's state, owner and priority: the changes a team makes, and the events.

A customer's conversation is every conversation row with their number (one per channel
and our address); a change applies to all of them, as the thread shows them together.
Each change is an event in the thread (`ConversationEvent`) and an entry in the audit
log. A customer's message opens a resolved or snoozed conversation again, keeping its
owner (`reopen`, called by ingest); a snooze ends by itself at its time (`wake_snoozed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.orm import Session, aliased

from relaydesk.auth.models import ROLE_RANK, User
from relaydesk.auth.service import Principal
from relaydesk.core import audit
from relaydesk.core.db import utcnow
from relaydesk.core.errors import Invalid, NotFound
from relaydesk.core.i18n import N_
from relaydesk.messaging import outgoing
from relaydesk.messaging.models import (
    Conversation,
    ConversationEvent,
    ConversationLabel,
    ConversationRead,
    ConversationStatus,
    Message,
    Priority,
)

# A snooze longer than this is a mistake (a year typed for a day).
MAX_SNOOZE = timedelta(days=366)
_UNSET: Any = object()


@dataclass(frozen=True)
class Change:
    """What a PATCH asks for; fields left out (_UNSET) stay as they are."""

    status: ConversationStatus | None = _UNSET
    snoozed_until: datetime | None = _UNSET
    assignee_id: int | None = _UNSET
    priority: Priority | None = _UNSET

    def given(self, name: str) -> bool:
        return getattr(self, name) is not _UNSET


def conversations_of(session: Session, participant: str) -> list[Conversation]:
    """Every conversation row with this number (NotFound when there is none)."""
    rows = list(
        session.scalars(
            select(Conversation)
            .where(Conversation.participant == participant)
            .order_by(Conversation.id)
            .with_for_update()
        )
    )
    if not rows:
        raise NotFound(
            N_("No conversation with %(participant)s"), params={"participant": participant}
        )
    return rows


def user_name(session: Session, user_id: int | None) -> str | None:
    """A user's display name, or None."""
    if user_id is None:
        return None
    user = session.get(User, user_id)
    return user.display_name if user else None


def actor_of(session: Session, principal: Principal) -> tuple[int | None, str]:
    """(user id, name shown in the thread) of whoever makes a change."""
    user_id = principal.user_id
    name = user_name(session, user_id)
    return user_id, name or principal.name


def _assignable(session: Session, assignee_id: int) -> User:
    user = session.get(User, assignee_id)
    if user is None:
        raise Invalid(
            N_("No user has the id %(id)s"), params={"id": assignee_id}, field="assignee_id"
        )
    if not user.is_active:
        raise Invalid(
            N_("%(name)s is locked and cannot be given conversations"),
            params={"name": user.display_name},
            field="assignee_id",
        )
    if ROLE_RANK.get(user.role, 0) < ROLE_RANK["operator"]:
        raise Invalid(
            N_("%(name)s is a viewer and cannot answer customers"),
            params={"name": user.display_name},
            field="assignee_id",
        )
    return user


def _check_snooze(change: Change, now: datetime) -> datetime | None:
    """The snooze end a change gives (None when it ends the snooze); refusals say why."""
    until = change.snoozed_until if change.given("snoozed_until") else None
    if change.status == ConversationStatus.SNOOZED:
        if until is None:
            raise Invalid(
                N_("A snoozed conversation needs snoozed_until: when it opens again"),
                params={},
                field="snoozed_until",
            )
        if until.tzinfo is None:
            raise Invalid(
                N_("snoozed_until needs a time zone (e.g. 2030-01-07T09:00:00+01:00)"),
                params={},
                field="snoozed_until",
            )
        if until <= now:
            raise Invalid(
                N_("snoozed_until must be in the future"), params={}, field="snoozed_until"
            )
        if until - now > MAX_SNOOZE:
            raise Invalid(
                N_("A conversation can be snoozed for at most a year"),
                params={},
                field="snoozed_until",
            )
        return until
    if until is not None:
        raise Invalid(
            N_("snoozed_until goes with status snoozed"), params={}, field="snoozed_until"
        )
    return None


def change(
    session: Session, participant: str, wanted: Change, principal: Principal
) -> list[Conversation]:
    """Apply a team member's change to a customer's conversations; events and audit."""
    now = utcnow()
    if wanted.given("status") and wanted.status is None:
        raise Invalid(N_("status cannot be empty"), params={}, field="status")
    if wanted.given("priority") and wanted.priority is None:
        raise Invalid(N_("priority cannot be empty"), params={}, field="priority")
    until = _check_snooze(wanted, now) if wanted.given("status") else None
    if not wanted.given("status") and wanted.given("snoozed_until"):
        raise Invalid(
            N_("snoozed_until goes with status snoozed"), params={}, field="snoozed_until"
        )
    assignee = (
        _assignable(session, wanted.assignee_id)
        if wanted.given("assignee_id") and wanted.assignee_id is not None
        else None
    )
    rows = conversations_of(session, participant)
    actor_id, actor = actor_of(session, principal)
    events: list[tuple[str, dict[str, Any]]] = []
    first = rows[0]
    if wanted.given("assignee_id") and wanted.assignee_id != first.assignee_id:
        events.append(
            (
                "assigned",
                {
                    "from": user_name(session, first.assignee_id),
                    "to": assignee.display_name if assignee else None,
                    "to_id": wanted.assignee_id,
                },
            )
        )
    if wanted.given("status") and (
        wanted.status != first.status
        or (wanted.status == ConversationStatus.SNOOZED and until != first.snoozed_until)
    ):
        data: dict[str, Any] = {"from": first.status.value, "to": str(wanted.status)}
        if until is not None:
            data["until"] = until.isoformat()
        events.append(("status", data))
    if wanted.given("priority") and wanted.priority != first.priority:
        events.append(("priority", {"from": first.priority.value, "to": str(wanted.priority)}))
    for row in rows:
        if wanted.given("assignee_id"):
            row.assignee_id = wanted.assignee_id
        if wanted.given("status"):
            assert wanted.status is not None
            row.status = wanted.status
            row.snoozed_until = until
        if wanted.given("priority"):
            assert wanted.priority is not None
            row.priority = wanted.priority
    for kind, data in events:
        session.add(
            ConversationEvent(
                conversation_id=first.id,
                participant=participant,
                kind=kind,
                actor_id=actor_id,
                actor=actor,
                data=data,
                created_at=now,
            )
        )
        audit.record(session, principal.actor, f"conversation.{kind}", participant, data)
    session.flush()
    for kind, data in events:
        if kind in ("status", "assigned"):
            outgoing.conversation(
                session, f"conversation.{kind}", [(participant, {**data, "by": actor})]
            )
    return rows


# What a customer's new message opens again.
CLOSED = (ConversationStatus.RESOLVED, ConversationStatus.SNOOZED)


def reopen(session: Session, conversation_ids: list[int], at: datetime) -> list[int]:
    """A customer wrote: open their resolved or snoozed conversations again (owner kept)."""
    if not conversation_ids:
        return []
    return _open_again(
        session,
        and_(Conversation.id.in_(conversation_ids), Conversation.status.in_(CLOSED)),
        "reopened",
        "customer",
        at,
    )


def open_for_team(
    session: Session, conversation_ids: list[int], actor: str, at: datetime
) -> list[int]:
    """Open these conversations whatever state they are in (the bot handed them over)."""
    if not conversation_ids:
        return []
    return _open_again(
        session,
        and_(
            Conversation.id.in_(conversation_ids),
            Conversation.status != ConversationStatus.OPEN,
        ),
        "reopened",
        actor,
        at,
    )


def inherit(session: Session, new: list[tuple[int, str]]) -> None:
    """A customer's new conversation rows (id, participant: no message, no owner, no
    priority yet), on another channel or number of ours, take the owner, priority and
    labels their other rows have, so the list shows them the same way."""
    if not new:
        return
    # The customers' other rows, most recent first: one query for the whole batch (a
    # burst of new customers has none).
    latest: dict[str, Any] = {}
    for row in session.execute(
        select(
            Conversation.id,
            Conversation.participant,
            Conversation.assignee_id,
            Conversation.priority,
        )
        .where(
            Conversation.participant.in_({participant for _, participant in new}),
            Conversation.id.not_in([conversation_id for conversation_id, _ in new]),
            Conversation.message_count > 0,
        )
        .order_by(Conversation.last_message_at.desc(), Conversation.id.desc())
    ):
        latest.setdefault(row.participant, row)
    for conversation_id, participant in new:
        sibling = latest.get(participant)
        if sibling is None:
            continue
        session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(assignee_id=sibling.assignee_id, priority=sibling.priority)
            .execution_options(synchronize_session=False)
        )
        labels = session.scalars(
            select(ConversationLabel.label_id).where(
                ConversationLabel.conversation_id == sibling.id
            )
        ).all()
        for label_id in labels:
            session.add(ConversationLabel(conversation_id=conversation_id, label_id=label_id))
    session.flush()


def wake_snoozed(session: Session, now: datetime | None = None) -> int:
    """Open the snoozed conversations whose time has come; how many."""
    now = now or utcnow()
    condition = and_(
        Conversation.status == ConversationStatus.SNOOZED, Conversation.snoozed_until <= now
    )
    return len(_open_again(session, condition, "snooze_ended", "clock", now))


def _open_again(
    session: Session, condition: ColumnElement[bool], kind: str, actor: str, at: datetime
) -> list[int]:
    """Open the conversations `condition` picks, each with an event; their ids."""
    opened = session.execute(
        update(Conversation)
        .where(condition)
        .values(status=ConversationStatus.OPEN, snoozed_until=None)
        .returning(Conversation.id, Conversation.participant)
        .execution_options(synchronize_session=False)
    ).all()
    session.add_all(
        ConversationEvent(
            conversation_id=conversation_id,
            participant=participant,
            kind=kind,
            actor_id=None,
            actor=actor,
            data={"to": ConversationStatus.OPEN.value},
            created_at=at,
        )
        for conversation_id, participant in opened
    )
    outgoing.conversation(
        session,
        "conversation.status",
        [
            (participant, {"to": ConversationStatus.OPEN.value, "reason": kind, "by": actor})
            for participant in sorted({participant for _, participant in opened})
        ],
    )
    return [conversation_id for conversation_id, _ in opened]


def events_of(session: Session, participant: str, limit: int = 500) -> list[ConversationEvent]:
    """A customer's conversation events, oldest first (the latest `limit`)."""
    rows = session.scalars(
        select(ConversationEvent)
        .where(ConversationEvent.participant == participant)
        .order_by(ConversationEvent.id.desc())
        .limit(limit)
    ).all()
    return list(reversed(rows))


def mark_read(session: Session, participant: str, user_id: int | None) -> None:
    """`user_id` has read every message with `participant` so far (their unread count)."""
    if user_id is None:
        return
    rows = session.execute(
        select(Conversation.id, Conversation.last_message_id).where(
            Conversation.participant == participant
        )
    ).all()
    now = utcnow()
    for conversation_id, last_message_id in rows:
        read = session.get(ConversationRead, (user_id, conversation_id))
        if read is None:
            session.add(
                ConversationRead(
                    user_id=user_id,
                    conversation_id=conversation_id,
                    last_read_message_id=last_message_id or 0,
                    read_at=now,
                )
            )
        else:
            read.last_read_message_id = max(read.last_read_message_id, last_message_id or 0)
            read.read_at = now


def unread_for(session: Session, user_id: int, conversation_ids: list[int]) -> dict[int, int]:
    """How many customer messages each conversation has that `user_id` has not read."""
    if not conversation_ids:
        return {}
    read = aliased(ConversationRead)
    counted = session.execute(
        select(Message.conversation_id, func.count(Message.id))
        .outerjoin(
            read,
            and_(read.conversation_id == Message.conversation_id, read.user_id == user_id),
        )
        .where(
            Message.conversation_id.in_(conversation_ids),
            Message.direction == "inbound",
            Message.id > func.coalesce(read.last_read_message_id, 0),
        )
        .group_by(Message.conversation_id)
    ).all()
    counts = dict.fromkeys(conversation_ids, 0)
    counts.update({cid: count for cid, count in counted if cid is not None})
    return counts
