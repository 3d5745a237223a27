"""The bot hands a conversation to the team (the built-in tool hand_over).

Stored with the bot's last answer, in the transaction of pipeline._finish: the bot is
switched off for this customer (as the chat's switch does; switching it on again ends
the hand-over), their conversation is opened for the team (whatever its state), the
thread shows a "handed over" event with the model's reason, and the team is told by a
note in the thread (in the installation's language) that mentions the conversation's
owner, or every active operator and admin when it has none. The mention stays unread
in their panel until they read it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from relaydesk.auth.models import User
from relaydesk.core import audit
from relaydesk.core.config import get_settings
from relaydesk.core.i18n import N_, localized
from relaydesk.inbox.models import ConversationNote, Mention
from relaydesk.messaging import states
from relaydesk.messaging.models import Conversation, ConversationEvent

ACTOR = "assistant"
MAX_REASON = 500


def hand_over(
    session: Session, conversation: Conversation, reason: str, run_id: int, at: datetime
) -> list[int]:
    """Stop the bot for this customer and call the team in; the users told."""
    participant = conversation.participant
    reason = " ".join(reason.split())[:MAX_REASON]
    session.execute(
        update(Conversation)
        .where(Conversation.participant == participant)
        .values(automation_enabled=False)
        .execution_options(synchronize_session=False)
    )
    states.open_for_team(session, [conversation.id], ACTOR, at)
    session.add(
        ConversationEvent(
            conversation_id=conversation.id,
            participant=participant,
            kind="handed_over",
            actor_id=None,
            actor=ACTOR,
            data={"reason": reason, "run_id": run_id},
            created_at=at,
        )
    )
    note = ConversationNote(
        conversation_id=conversation.id,
        participant=participant,
        author_id=None,
        author=ACTOR,
        body=localized(
            get_settings().language,
            N_("The assistant handed this conversation over: %(reason)s"),
            {"reason": reason},
        ),
        created_at=at,
    )
    session.add(note)
    session.flush()
    told = _team(session, conversation.assignee_id)
    session.add_all(
        Mention(note_id=note.id, user_id=uid, participant=participant, created_at=at)
        for uid in told
    )
    audit.record(
        session,
        ACTOR,
        "conversation.handed_over",
        participant,
        {"reason": reason, "run_id": run_id, "told": len(told)},
    )
    return told


def _team(session: Session, assignee_id: int | None) -> list[int]:
    """Who is told: the conversation's owner, or every active operator and admin."""
    if assignee_id is not None:
        active = session.scalar(select(User.is_active).where(User.id == assignee_id))
        if active:
            return [assignee_id]
    return list(
        session.scalars(
            select(User.id)
            .where(User.is_active.is_(True), User.role.in_(("operator", "admin")))
            .order_by(User.id)
        )
    )
