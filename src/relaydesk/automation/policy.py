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


@dataclass
class _Batch:
    """What deciding a set of runs reads, read set-wise (a batch of webhooks' runs is
    decided in one read transaction: five queries for the batch instead of five a run)."""

    found: dict[int, tuple[Message | None, Conversation | None, Contact | None]]
    latest_inbound: dict[int, int]  # conversation → its latest inbound message id
    recent: dict[int, list[Any]]  # conversation → its last messages (newest first)
    automatic: dict[str, int]  # participant → our automatic answers in the last hour
    bindings: dict[str, tuple[Any, Any] | None]  # number written to → its assistant
    rules: cfg.Rules

    def later(self, session: Session, message: Message) -> Message | None:
        """The conversation's latest inbound message, if it came after this one."""
        later = self.latest_inbound.get(message.conversation_id or 0)
        if later is None or later <= message.id:
            return None
        return session.get(Message, later)

    def lines(self, session: Session, message: Message) -> list[loops.Line]:
        """The conversation's messages before this one (automation.loops), oldest first."""
        since = message.created_at - loops.WINDOW
        read = self.recent.get(message.conversation_id or 0, [])
        rows = [row for row in read if row.id < message.id and row.created_at >= since]
        if len(rows) < loops.LINES and len(read) >= _RECENT_CAP:
            # The batch's read was cut short in this busy conversation: read its own.
            rows = _recent(session, {message.conversation_id or 0}, since, message.id)
        return [
            loops.Line(
                inbound=row.direction == "inbound",
                automatic=row.source in AUTOMATIC_SOURCES,
                text=row.body,
            )
            for row in reversed(rows[: loops.LINES])
        ]


_BATCH = "relaydesk.automation.batch"
# Each conversation's last messages read for a batch; more than enough for one message's
# loops.LINES when the batch holds a few of the same conversation's messages.
_RECENT_CAP = 2 * loops.LINES


def read_batch(session: Session, run_ids: list[int]) -> None:
    """Read what deciding these runs needs, set-wise, for `decide` in this session."""
    session.info[_BATCH] = _read_batch(session, run_ids)


def _read_batch(session: Session, run_ids: list[int]) -> _Batch:
    found: dict[int, tuple[Message | None, Conversation | None, Contact | None]] = {
        run_id: (message, conversation, contact)
        for run_id, message, conversation, contact in session.execute(
            select(AutomationRun.id, Message, Conversation, Contact)
            .select_from(AutomationRun)
            .outerjoin(Message, Message.id == AutomationRun.inbound_message_id)
            .outerjoin(Conversation, Conversation.id == Message.conversation_id)
            .outerjoin(Contact, Contact.id == Conversation.contact_id)
            .where(AutomationRun.id.in_(run_ids))
        )
    }
    messages = [m for m, _, _ in found.values() if m is not None and m.conversation_id]
    latest_inbound: dict[int, int] = {}
    if messages:
        # Per conversation, from the batch's first message on (the index's range).
        latest_inbound = {
            conversation_id or 0: latest
            for conversation_id, latest in session.execute(
                select(Message.conversation_id, func.max(Message.id))
                .where(
                    Message.conversation_id.in_({m.conversation_id for m in messages}),
                    Message.id > min(m.id for m in messages),
                    Message.direction == "inbound",
                )
                .group_by(Message.conversation_id)
            )
        }
    worded = [m for m in messages if loops.normalised(m.body)]
    recent: dict[int, list[Any]] = {}
    if worded:
        since = min(m.created_at for m in worded) - loops.WINDOW
        below = max(m.id for m in worded)
        for row in _recent(session, {m.conversation_id or 0 for m in worded}, since, below):
            recent.setdefault(row.conversation_id, []).append(row)
    automatic: dict[str, int] = {}
    participants = {m.participant for m in messages}
    if participants:
        automatic = {
            participant: int(count)
            for participant, count in session.execute(
                select(Message.participant, func.count())
                .where(
                    Message.participant.in_(participants),
                    Message.direction == "outbound",
                    Message.source.in_(AUTOMATIC_SOURCES),
                    Message.created_at >= utcnow() - timedelta(hours=1),
                )
                .group_by(Message.participant)
            )
        }
    addresses = {c.our_address for _, c, _ in found.values() if c is not None}
    return _Batch(
        found=found,
        latest_inbound=latest_inbound,
        recent=recent,
        automatic=automatic,
        bindings=assistants.bindings_for(session, addresses),
        rules=cfg.read_rules(session),
    )


def _recent(session: Session, conversations: set[int], since: datetime, below: int) -> list[Any]:
    """The last messages (at most _RECENT_CAP each, newest first) of these conversations
    before message id `below`, from `since` on."""
    numbered = (
        select(
            Message.conversation_id,
            Message.id,
            Message.created_at,
            Message.direction,
            Message.source,
            Message.body,
            func.row_number()
            .over(partition_by=Message.conversation_id, order_by=Message.id.desc())
            .label("place"),
        )
        .where(
            Message.conversation_id.in_(conversations),
            Message.id < below,
            Message.created_at >= since,
        )
        .subquery()
    )
    return list(
        session.execute(
            select(numbered)
            .where(numbered.c.place <= _RECENT_CAP)
            .order_by(numbered.c.conversation_id, numbered.c.id.desc())
        )
    )


def decide(session: Session, run_id: int) -> Decision:
    """What the pipeline does about the run's message (reads only); from the batch that
    `read_batch` read in this session, if it holds the run."""
    batch = session.info.get(_BATCH)
    if batch is None or run_id not in batch.found:
        batch = _read_batch(session, [run_id])
    message, conversation, contact = batch.found.get(run_id, (None, None, None))
    if message is None or message.conversation_id is None:
        return Decision(RunOutcome.NO_MODE, detail=N_("the message was deleted"))
    assert conversation is not None
    rules = batch.rules
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
        looping = _loop(session, message, batch)
        if looping:
            return Decision(RunOutcome.LOOP_GUARD, detail=f"{keyword}: {looping}")
        if batch.automatic.get(message.participant, 0) >= rules.loop_guard_per_hour:
            too_many = N_("%(keyword)s: too many automatic answers") % {"keyword": keyword}
            return Decision(RunOutcome.LOOP_GUARD, detail=too_many)
        return Decision(RunOutcome.KEYWORD_REPLY, source="auto_reply", text=text, detail=keyword)

    if contact is not None and contact.opted_out_at is not None:
        return Decision(RunOutcome.OPTED_OUT, detail=N_("the customer has unsubscribed"))
    blocked = stepped_back(conversation, rules)
    if blocked:
        return blocked
    later = batch.later(session, message)
    if later is not None and not opt_out_keyword(later.body, (later.raw or {}).get("OptOutType")):
        merged = N_("answered together with message %(message)d") % {"message": later.id}
        return Decision(RunOutcome.MERGED, detail=merged)
    looping = _loop(session, message, batch)
    if looping:
        return Decision(RunOutcome.LOOP_GUARD, detail=looping)
    if batch.automatic.get(message.participant, 0) >= rules.loop_guard_per_hour:
        return Decision(
            RunOutcome.LOOP_GUARD,
            detail=N_("%(count)d automatic answers in the last hour already")
            % {"count": rules.loop_guard_per_hour},
        )

    ai, _ = cfg.read_ai(session)
    bound = batch.bindings.get(conversation.our_address)
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


def _loop(session: Session, message: Message, batch: _Batch) -> str | None:
    """Why the message is part of a loop with another machine (automation.loops), if it is."""
    if not loops.normalised(message.body):
        return None  # nothing to compare: the conversation was not read for it
    return loops.loop_reason(message.body, batch.lines(session, message))


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
