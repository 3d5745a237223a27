"""Automatic assignment: a customer nobody owns goes to the next operator online (round-robin).

Off by default (a setting an admin switches on). When a customer writes and none of
their conversation rows has an owner, the operator or admin who is online in the panel
and has waited longest since their last automatic assignment gets it; locked users,
viewers and people who are not signed in are never chosen. With nobody online the
conversation stays unassigned (the team sees it under "Unassigned").

"Online" is a panel session seen within `ONLINE_WINDOW`: an open panel page keeps its
session fresh through the live stream (auth.sessions touches it once a minute), and
signing out ends it at once. The turn is `users.last_assigned_at`; two processes
assigning at the same moment may pick the same person once, which costs fairness, not
correctness. Each assignment is an "assigned" event by "round-robin" and an audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from relaydesk.auth.models import User, WebSession
from relaydesk.core import audit, settings_store
from relaydesk.core.db import utcnow
from relaydesk.messaging import outgoing
from relaydesk.messaging.models import Conversation, ConversationEvent, ConversationStatus

SETTING_KEY = "inbox.assignment"
ACTOR = "round-robin"
# A panel session seen this recently counts as online (the live stream touches it each minute).
ONLINE_WINDOW = timedelta(minutes=3)
CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class AssignmentConfig:
    """How conversations without an owner get one."""

    round_robin: bool = False


def read_config(session: Session) -> AssignmentConfig:
    """The setting as stored."""
    data = settings_store.stored_dict(
        settings_store.read(session, [SETTING_KEY]).values, SETTING_KEY
    )
    return AssignmentConfig(round_robin=bool(data.get("round_robin", False)))


# Ingest asks on every batch of webhooks: read at most once per CACHE_SECONDS.
_current = settings_store.Cached(read_config, CACHE_SECONDS)


def save_config(session: Session, config: AssignmentConfig, actor: str) -> AssignmentConfig:
    """Store the setting (audited when it changes)."""
    settings_store.save(
        session,
        {SETTING_KEY: {"round_robin": config.round_robin}},
        actor=actor,
        action="settings.assignment",
        target=SETTING_KEY,
    )
    return config


def online_operators(session: Session, now: datetime | None = None) -> list[User]:
    """Operators and admins signed in to the panel now, whose turn comes first first."""
    now = now or utcnow()
    live = exists().where(
        WebSession.user_id == User.id,
        WebSession.last_seen_at >= now - ONLINE_WINDOW,
        WebSession.expires_at > now,
    )
    return list(
        session.scalars(
            select(User)
            .where(User.is_active.is_(True), User.role.in_(("operator", "admin")), live)
            .order_by(User.last_assigned_at.is_not(None), User.last_assigned_at, User.id)
        )
    )


def assign_waiting(session: Session, conversation_ids: list[int], at: datetime) -> dict[str, int]:
    """Give each customer among these rows who has no owner to the next operator online.

    Called by ingest in the transaction that stores the customer's messages; returns
    {participant: user id} for the customers it assigned.
    """
    if not conversation_ids or not _current.get(session).round_robin:
        return {}
    waiting = sorted(
        set(
            session.scalars(
                select(Conversation.participant).where(
                    Conversation.id.in_(conversation_ids),
                    Conversation.assignee_id.is_(None),
                    Conversation.status == ConversationStatus.OPEN,
                )
            )
        )
    )
    if not waiting:
        return {}
    # A customer one of whose rows has an owner keeps that owner (states.inherit's job).
    taken = set(
        session.scalars(
            select(Conversation.participant).where(
                Conversation.participant.in_(waiting), Conversation.assignee_id.is_not(None)
            )
        )
    )
    waiting = [p for p in waiting if p not in taken]
    people = online_operators(session) if waiting else []
    if not people:
        return {}
    # Turns are ordered by this stamp; strictly after the last one even when clocks agree.
    latest = session.scalar(select(func.max(User.last_assigned_at)))
    stamp = at if latest is None or latest < at else latest
    given: dict[str, int] = {}
    user_names: dict[str, str] = {}
    for turn, participant in enumerate(waiting):
        person = people[turn % len(people)]
        data = {"from": None, "to": person.display_name, "to_id": person.id, "auto": True}
        rows = session.execute(
            update(Conversation)
            .where(Conversation.participant == participant, Conversation.assignee_id.is_(None))
            .values(assignee_id=person.id)
            .returning(Conversation.id)
            .execution_options(synchronize_session=False)
        ).all()
        if not rows:
            continue
        session.add(
            ConversationEvent(
                conversation_id=min(conversation_id for (conversation_id,) in rows),
                participant=participant,
                kind="assigned",
                actor_id=None,
                actor=ACTOR,
                data=data,
                created_at=at,
            )
        )
        audit.record(session, ACTOR, "conversation.assigned", participant, data)
        given[participant] = person.id
        user_names[participant] = person.display_name
        # Later turns in this batch are later: the next batch starts with whoever is next.
        session.execute(
            update(User)
            .where(User.id == person.id)
            .values(last_assigned_at=stamp + timedelta(microseconds=turn + 1))
            .execution_options(synchronize_session=False)
        )
    if given:
        outgoing.conversation(
            session,
            "conversation.assigned",
            [
                (p, {"from": None, "to": user_names[p], "to_id": uid, "auto": True, "by": ACTOR})
                for p, uid in given.items()
            ],
        )
    return given
