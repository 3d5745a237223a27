"""Which answer, if any, an inbound message gets: the precedence of the pipeline.

Opt-out keywords → opted-out contact → bot switched off or a person answering
(takeover) → a later message in the same burst (debounce) → loop guard (a loop with
another machine, automation.loops; then the per-hour cap) → the number's
assistant → global AI auto-reply → out-of-office answer → classic auto-reply.
Reads only; the pipeline stores.

Business hours (inbox.hours) change only the last two steps: the bots (assistant, AI)
answer around the clock, and no out-of-office answer goes where a bot answers. With
business hours on and a message received while closed, the out-of-office answer takes
the classic auto-reply's place: once per conversation per closed period (the pipeline
claims the period on the conversation in the transaction that stores the answer); later
messages of that period get no automatic answer, and their runs say so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from relaydesk.ai.providers import LLMConfig
from relaydesk.automation import assistants, loops
from relaydesk.automation import settings as cfg
from relaydesk.automation.models import (
    AutomationRun,
    RunOutcome,
)
from relaydesk.contacts.consent import opt_out_keyword
from relaydesk.contacts.models import Contact
from relaydesk.core.db import utcnow
from relaydesk.core.i18n import N_
from relaydesk.inbox import hours_settings
from relaydesk.inbox.hours import BusinessHours, closed_period_start
from relaydesk.messaging.models import Conversation, Message

log = logging.getLogger(__name__)

AUTOMATIC_SOURCES = ("auto_reply", "ai", "assistant")
OUT_OF_OFFICE_SENT = N_("the out-of-office answer was already sent in this closed period")


@dataclass
class LLMJob:
    """A reply that needs the model."""

    llm: LLMConfig
    system_prompt: str
    history_limit: int
    max_segments: int
    floor_id: int
    fallback: str = ""
    greeting: str = ""  # an assistant's first message, sent ahead of the answer
    assistant_id: int | None = None
    session_id: int | None = None  # the assistant session continued, if any
    knowledge_index: str | None = None  # ground the answer on this index
    voice_replies: bool = False  # a voice note is answered with a voice note


@dataclass
class Decision:
    """What to do about one inbound message."""

    outcome: RunOutcome
    source: str | None = None
    text: str | None = None
    detail: str | None = None
    job: LLMJob | None = None
    ooo_period: datetime | None = None  # the closed period an out-of-office answer is for


def decide(session: Session, run_id: int) -> Decision:
    """What the pipeline does about the run's message (reads only)."""
    # The run, its message, conversation and contact in one query (each was one).
    message, conversation, contact = session.execute(
        select(Message, Conversation, Contact)
        .select_from(AutomationRun)
        .outerjoin(Message, Message.id == AutomationRun.inbound_message_id)
        .outerjoin(Conversation, Conversation.id == Message.conversation_id)
        .outerjoin(Contact, Contact.id == Conversation.contact_id)
        .where(AutomationRun.id == run_id)
    ).one()
    if message is None or message.conversation_id is None:
        return Decision(RunOutcome.NO_MODE, detail=N_("the message was deleted"))
    assert conversation is not None
    rules = cfg.read_rules(session)
    opt_out_type = (message.raw or {}).get("OptOutType")

    keyword = opt_out_keyword(message.body, opt_out_type)
    if keyword == "STOP":
        return Decision(RunOutcome.OPT_OUT, detail=N_("the customer unsubscribed"))
    if keyword in ("START", "HELP"):
        text = rules.start_message if keyword == "START" else rules.help_message
        if opt_out_type:
            answered = N_("%(keyword)s: Twilio's Advanced Opt-Out answered")
            return Decision(RunOutcome.KEYWORD, detail=answered % {"keyword": keyword})
        if not text.strip():
            unset = N_("%(keyword)s: no answer is configured") % {"keyword": keyword}
            return Decision(RunOutcome.KEYWORD, detail=unset)
        looping = _loop(session, message)
        if looping:
            return Decision(RunOutcome.LOOP_GUARD, detail=f"{keyword}: {looping}")
        if _recent_automatic(session, message.participant) >= rules.loop_guard_per_hour:
            too_many = N_("%(keyword)s: too many automatic answers") % {"keyword": keyword}
            return Decision(RunOutcome.LOOP_GUARD, detail=too_many)
        return Decision(RunOutcome.KEYWORD_REPLY, source="auto_reply", text=text, detail=keyword)

    if contact is not None and contact.opted_out_at is not None:
        return Decision(RunOutcome.OPTED_OUT, detail=N_("the customer has unsubscribed"))
    blocked = stepped_back(conversation, rules)
    if blocked:
        return blocked
    later = session.scalar(
        select(Message.id)
        .where(
            Message.conversation_id == conversation.id,
            Message.direction == "inbound",
            Message.id > message.id,
        )
        .order_by(Message.id.desc())
        .limit(1)
    )
    if later is not None:
        later_msg = session.get(Message, later)
        if later_msg is not None and not opt_out_keyword(
            later_msg.body, (later_msg.raw or {}).get("OptOutType")
        ):
            merged = N_("answered together with message %(message)d") % {"message": later}
            return Decision(RunOutcome.MERGED, detail=merged)
    looping = _loop(session, message)
    if looping:
        return Decision(RunOutcome.LOOP_GUARD, detail=looping)
    if _recent_automatic(session, message.participant) >= rules.loop_guard_per_hour:
        return Decision(
            RunOutcome.LOOP_GUARD,
            detail=N_("%(count)d automatic answers in the last hour already")
            % {"count": rules.loop_guard_per_hour},
        )

    ai, _ = cfg.read_ai(session)
    bound = assistants.binding_for(session, conversation.our_address)
    if bound is not None:
        return _assistant_decision(session, message, conversation, bound, ai)
    if ai.enabled:
        if ai.enabled_at is None or message.created_at < ai.enabled_at:
            retro = N_("received before AI replies were switched on")
            return Decision(RunOutcome.RETRO, detail=retro)
        return Decision(
            RunOutcome.AI,
            source="ai",
            job=LLMJob(
                llm=cfg.llm_config(ai),
                system_prompt=ai.system_prompt,
                history_limit=ai.history_limit,
                max_segments=ai.max_reply_segments,
                floor_id=0,
                fallback=ai.fallback_message,
                knowledge_index=ai.knowledge_index,
                voice_replies=ai.voice_replies,
            ),
        )
    hours = hours_settings.read(session)
    if hours.answers:
        period = closed_period_start(hours, message.created_at)
        if period is not None:
            return _out_of_office(conversation, hours, period)
    classic = cfg.read_auto_reply(session)
    if classic.enabled and classic.message.strip():
        if classic.enabled_at is None or message.created_at < classic.enabled_at:
            return Decision(
                RunOutcome.RETRO, detail=N_("received before the auto-reply was switched on")
            )
        return Decision(RunOutcome.AUTO_REPLY, source="auto_reply", text=classic.message)
    return Decision(RunOutcome.NO_MODE, detail=N_("no automatic answer is switched on"))


def stepped_back(conversation: Conversation, rules: cfg.Rules) -> Decision | None:
    """Why the bot keeps out of this conversation now (switched off, a person answering)."""
    if not conversation.automation_enabled:
        off = N_("automatic answers are off in this conversation")
        return Decision(RunOutcome.BOT_OFF, detail=off)
    human = conversation.human_replied_at
    if human is not None:
        until = human + timedelta(minutes=rules.takeover_minutes)
        if until > utcnow():
            paused = N_("a person is answering; paused until %(time)s UTC")
            return Decision(RunOutcome.PAUSED, detail=paused % {"time": f"{until:%H:%M}"})
    return None


def _out_of_office(conversation: Conversation, hours: BusinessHours, period: datetime) -> Decision:
    """The out-of-office answer, unless this closed period's went to the conversation."""
    if conversation.ooo_period_start == period:
        return Decision(RunOutcome.OUT_OF_OFFICE, detail=OUT_OF_OFFICE_SENT)
    return Decision(
        RunOutcome.OUT_OF_OFFICE, source="auto_reply", text=hours.message, ooo_period=period
    )


def _loop(session: Session, message: Message) -> str | None:
    """Why the message is part of a loop with another machine (automation.loops), if it is."""
    if not loops.normalised(message.body):
        return None  # nothing to compare: no need to read the conversation
    rows = session.execute(
        select(Message.direction, Message.source, Message.body)
        .where(
            Message.conversation_id == message.conversation_id,
            Message.id < message.id,
            Message.created_at >= message.created_at - loops.WINDOW,
        )
        .order_by(Message.id.desc())
        .limit(loops.LINES)
    ).all()
    earlier = [
        loops.Line(inbound=direction == "inbound", automatic=source in AUTOMATIC_SOURCES, text=body)
        for direction, source, body in reversed(rows)
    ]
    return loops.loop_reason(message.body, earlier)


def _recent_automatic(session: Session, participant: str) -> int:
    since = utcnow() - timedelta(hours=1)
    return int(
        session.scalar(
            select(func.count())
            .select_from(Message)
            .where(
                Message.participant == participant,
                Message.direction == "outbound",
                Message.source.in_(AUTOMATIC_SOURCES),
                Message.created_at >= since,
            )
        )
        or 0
    )


def _assistant_decision(
    session: Session,
    message: Message,
    conversation: Conversation,
    bound: tuple[Any, Any],
    ai: cfg.AIConfig,
) -> Decision:
    binding, assistant = bound
    if message.created_at < binding.bound_at:
        return Decision(
            RunOutcome.RETRO, detail=N_("received before the number was given its assistant")
        )
    live = assistants.open_session(session, conversation.id, assistant, message.created_at)
    word = assistants.ends_session(message.body, list(assistant.end_keywords or []))
    if word is not None:
        return Decision(
            RunOutcome.SESSION_ENDED,
            detail=N_("the customer wrote '%(word)s'") % {"word": word},
            job=LLMJob(
                llm=cfg.llm_config(ai),
                system_prompt="",
                history_limit=0,
                max_segments=0,
                floor_id=0,
                assistant_id=assistant.id,
                session_id=live.id if live else None,
            ),
        )
    if live is not None:
        floor = live.first_message_id - 1
        greeting = ""
    else:
        # A new session reads the customer's whole burst since our last message.
        last_out = session.scalar(
            select(func.max(Message.id)).where(
                Message.conversation_id == conversation.id,
                Message.direction == "outbound",
                Message.id < message.id,
            )
        )
        floor = int(last_out or 0)
        greeting = assistant.first_message
    prompt = assistant_prompt(assistant.system_prompt or ai.system_prompt, greeting)
    return Decision(
        RunOutcome.ASSISTANT,
        source="assistant",
        job=LLMJob(
            llm=cfg.llm_config(ai, model=assistant.model, temperature=assistant.temperature),
            system_prompt=prompt,
            history_limit=ai.history_limit,
            max_segments=ai.max_reply_segments,
            floor_id=floor,
            fallback=ai.fallback_message,
            greeting=greeting,
            assistant_id=assistant.id,
            session_id=live.id if live else None,
            knowledge_index=assistant.knowledge_index,
            voice_replies=assistant.voice_replies,
        ),
    )


def assistant_prompt(instructions: str, greeting: str) -> str:
    """An assistant's instructions, told about the greeting sent ahead of its answer."""
    if not greeting:
        return instructions
    return (
        f"{instructions}\n\nYour answer is sent right after this greeting, which the "
        f'customer receives first: "{greeting}". Do not repeat the greeting; answer the '
        "customer's message."
    )
