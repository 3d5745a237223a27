"""The one automation pipeline: what (if anything) answers an inbound message.

Precedence: opt-out keywords → opted-out contact → bot switched off or a person
answering (takeover) → a later message in the same burst (debounce) → loop guard →
the number's assistant → global AI auto-reply → classic auto-reply.

Exactly one answer per inbound message: the run row is unique per message, a worker
claims it under a random token with a lease, the model is called with no transaction
open, and the answer is stored in the same transaction that marks the run done under
that token. A worker that died mid-job leaves an expired lease that the sweep hands
to another worker; a slow worker that lost its lease cannot store a second answer.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from relaydesk.ai import providers
from relaydesk.ai.providers import ChatTurn, Completion, LLMConfig, LLMError
from relaydesk.ai.text import trim_to_segments
from relaydesk.automation import assistants, context
from relaydesk.automation import grounding as grounding_of
from relaydesk.automation import settings as cfg
from relaydesk.automation.models import (
    AssistantSession,
    AutomationRun,
    LLMUsage,
    RunOutcome,
    RunState,
)
from relaydesk.contacts.consent import opt_out_keyword
from relaydesk.contacts.models import Contact
from relaydesk.core.config import get_settings
from relaydesk.core.db import dialect_insert, session_scope, utcnow
from relaydesk.core.errors import OptedOut, RelaydeskError
from relaydesk.core.tasks import enqueue_after_commit
from relaydesk.media import outbound as media_outbound
from relaydesk.media import service as media
from relaydesk.messaging import service as messaging
from relaydesk.messaging.models import Conversation, Message

log = logging.getLogger(__name__)

AUTOMATIC_SOURCES = ("auto_reply", "ai", "assistant")
MAX_ATTEMPTS = 3


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


@dataclass
class Answer:
    """The outcome after the model (if any) was asked."""

    outcome: RunOutcome
    source: str | None = None
    text: str | None = None
    detail: str | None = None
    usage: list[Completion] = field(default_factory=list)
    job: LLMJob | None = None
    knowledge: list[dict[str, Any]] | None = None  # the passages the answer used
    media_urls: list[str] = field(default_factory=list)  # a voice reply's audio


def queue_for(session: Session, message: Message) -> None:
    """Create the message's run and queue it (called in the transaction that claims it)."""
    insert = dialect_insert(session)(AutomationRun)
    run_id = session.scalar(
        insert.values(
            inbound_message_id=message.id,
            conversation_id=message.conversation_id,
            participant=message.participant,
            state=RunState.PENDING,
            attempts=0,
            prompt_tokens=0,
            completion_tokens=0,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["inbound_message_id"])
        .returning(AutomationRun.id)
    )
    if run_id is None:
        return
    keyword = opt_out_keyword(message.body, (message.raw or {}).get("OptOutType"))
    delay = 0.0 if keyword else cfg.read_rules(session).debounce_seconds
    enqueue_after_commit(session, "automation.run", run_id, delay=delay or None)


def run(run_id: int) -> RunOutcome | None:
    """Decide, ask the model if needed, and store at most one answer; returns the outcome."""
    token = secrets.token_hex(8)
    now = utcnow()
    lease = timedelta(seconds=get_settings().automation_lease_seconds)
    with session_scope() as session:
        claimed = session.execute(
            update(AutomationRun)
            .where(
                AutomationRun.id == run_id,
                or_(
                    AutomationRun.state == RunState.PENDING,
                    and_(AutomationRun.state == RunState.WORKING, AutomationRun.lease_until < now),
                ),
            )
            .values(
                state=RunState.WORKING,
                claim_token=token,
                lease_until=now + lease,
                attempts=AutomationRun.attempts + 1,
            )
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        found = session.execute(
            select(AutomationRun.attempts, Message.id, Message.num_media > 0)
            .select_from(AutomationRun)
            .outerjoin(Message, Message.id == AutomationRun.inbound_message_id)
            .where(AutomationRun.id == run_id)
        ).first()
    if not claimed or found is None:
        return None
    attempts, message_id, with_files = found
    # Only a message with files can make its answer wait (no extra transaction otherwise).
    if with_files and _waits_for_media(run_id, token, message_id):
        return RunOutcome.WAITING
    if attempts is not None and attempts > MAX_ATTEMPTS:
        answer = Answer(
            RunOutcome.FAILED, detail=f"gave up after {MAX_ATTEMPTS} interrupted attempts"
        )
        return _finish(run_id, token, answer)
    with session_scope(write=False) as session:
        decision = decide(session, run_id)
    answer = _answer(decision, run_id)
    return _finish(run_id, token, answer)


def _waits_for_media(run_id: int, token: str, message_id: int) -> bool:
    """Hand the run back while its message's files are still being fetched and understood.

    The media job queues `automation.resume` when it is done; the sweep is the net.
    """
    with session_scope(write=False) as session:
        message = session.get(Message, message_id)
        if message is None or not media.should_wait(session, message):
            return False
    with session_scope() as session:
        session.execute(
            update(AutomationRun)
            .where(AutomationRun.id == run_id, AutomationRun.claim_token == token)
            .values(
                state=RunState.PENDING,
                claim_token=None,
                lease_until=None,
                attempts=AutomationRun.attempts - 1,
            )
            .execution_options(synchronize_session=False)
        )
    return True


def resume(message_id: int) -> None:
    """Run the answer that waited for this message's files (if it is still waiting)."""
    with session_scope(write=False) as session:
        found = session.execute(
            select(AutomationRun.id, AutomationRun.created_at).where(
                AutomationRun.inbound_message_id == message_id,
                AutomationRun.state == RunState.PENDING,
            )
        ).first()
        debounce = timedelta(seconds=cfg.read_rules(session).debounce_seconds)
    # Still inside its burst window: the run's own delayed job comes then.
    if found is not None and found.created_at + debounce <= utcnow():
        run(found.id)


def decide(session: Session, run_id: int) -> Decision:
    """What the pipeline does about the run's message (reads only)."""
    row = session.get(AutomationRun, run_id)
    assert row is not None
    message = session.get(Message, row.inbound_message_id)
    if message is None or message.conversation_id is None:
        return Decision(RunOutcome.NO_MODE, detail="the message was deleted")
    conversation = session.get(Conversation, message.conversation_id)
    assert conversation is not None
    contact = session.get(Contact, conversation.contact_id)
    rules = cfg.read_rules(session)
    opt_out_type = (message.raw or {}).get("OptOutType")

    keyword = opt_out_keyword(message.body, opt_out_type)
    if keyword == "STOP":
        return Decision(RunOutcome.OPT_OUT, detail="the customer unsubscribed")
    if keyword in ("START", "HELP"):
        text = rules.start_message if keyword == "START" else rules.help_message
        if opt_out_type:
            return Decision(
                RunOutcome.KEYWORD, detail=f"{keyword}: Twilio's Advanced Opt-Out answered"
            )
        if not text.strip():
            return Decision(RunOutcome.KEYWORD, detail=f"{keyword}: no answer is configured")
        if _recent_automatic(session, message.participant) >= rules.loop_guard_per_hour:
            return Decision(RunOutcome.LOOP_GUARD, detail=f"{keyword}: too many automatic answers")
        return Decision(RunOutcome.KEYWORD_REPLY, source="auto_reply", text=text, detail=keyword)

    if contact is not None and contact.opted_out_at is not None:
        return Decision(RunOutcome.OPTED_OUT, detail="the customer has unsubscribed")
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
            return Decision(RunOutcome.MERGED, detail=f"answered together with message {later}")
    if _recent_automatic(session, message.participant) >= rules.loop_guard_per_hour:
        return Decision(
            RunOutcome.LOOP_GUARD,
            detail=f"{rules.loop_guard_per_hour} automatic answers in the last hour already",
        )

    ai, _ = cfg.read_ai(session)
    bound = assistants.binding_for(session, conversation.our_address)
    if bound is not None:
        return _assistant_decision(session, message, conversation, bound, ai)
    if ai.enabled:
        if ai.enabled_at is None or message.created_at < ai.enabled_at:
            return Decision(RunOutcome.RETRO, detail="received before AI replies were switched on")
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
    classic = cfg.read_auto_reply(session)
    if classic.enabled and classic.message.strip():
        if classic.enabled_at is None or message.created_at < classic.enabled_at:
            return Decision(
                RunOutcome.RETRO, detail="received before the auto-reply was switched on"
            )
        return Decision(RunOutcome.AUTO_REPLY, source="auto_reply", text=classic.message)
    return Decision(RunOutcome.NO_MODE, detail="no automatic answer is switched on")


def stepped_back(conversation: Conversation, rules: cfg.Rules) -> Decision | None:
    """Why the bot keeps out of this conversation now (switched off, a person answering)."""
    if not conversation.automation_enabled:
        return Decision(RunOutcome.BOT_OFF, detail="automatic answers are off in this conversation")
    human = conversation.human_replied_at
    if human is not None:
        until = human + timedelta(minutes=rules.takeover_minutes)
        if until > utcnow():
            return Decision(
                RunOutcome.PAUSED, detail=f"a person is answering; paused until {until:%H:%M} UTC"
            )
    return None


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
            RunOutcome.RETRO, detail="received before the number was given its assistant"
        )
    live = assistants.open_session(session, conversation.id, assistant, message.created_at)
    word = assistants.ends_session(message.body, list(assistant.end_keywords or []))
    if word is not None:
        return Decision(
            RunOutcome.SESSION_ENDED,
            detail=f"the customer wrote '{word}'",
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


def complete(llm: LLMConfig, turns: list[ChatTurn]) -> Completion:
    """The model call with the configured retries for transient errors."""
    settings = get_settings()
    return providers.complete(
        llm,
        turns,
        retries=settings.llm_retries,
        backoff_seconds=settings.llm_retry_backoff_seconds,
    )


def _answer(decision: Decision, run_id: int) -> Answer:
    job = decision.job
    if job is None or decision.outcome == RunOutcome.SESSION_ENDED:
        return Answer(decision.outcome, decision.source, decision.text, decision.detail, job=job)
    with session_scope(write=False) as session:
        row = session.get(AutomationRun, run_id)
        assert row is not None
        upto, conversation_id = row.inbound_message_id, row.conversation_id
    usage: list[Completion] = []
    try:
        ctx = context.build(
            conversation_id,
            upto_id=upto,
            floor_id=job.floor_id,
            system_prompt=job.system_prompt,
            history_limit=job.history_limit,
            llm=job.llm,
            complete=complete,
        )
        usage.extend(ctx.usage)
        turns, found, note = ctx.turns, None, None
        if job.knowledge_index:
            customer = "\n".join(line.text for line in ctx.lines if line.role == "user")
            grounding = grounding_of.find(job.knowledge_index, customer[-2000:])
            turns = grounding_of.ground(ctx.turns, grounding, job.llm.provider)
            found, note = grounding.record(), grounding.problem
        done = complete(job.llm, turns)
        usage.append(done)
    except LLMError as exc:
        return Answer(
            RunOutcome.FAILED,
            decision.source,
            job.fallback.strip() or None,
            f"the model could not answer: {exc}",
            usage,
            job,
        )
    text = compose(job.greeting, done.text, job.max_segments)
    if not text:
        return Answer(
            RunOutcome.FAILED,
            decision.source,
            job.fallback.strip() or None,
            "the model gave an empty answer",
            usage,
            job,
        )
    detail = f"answered without knowledge: {note}" if note else None
    answer = Answer(decision.outcome, decision.source, text, detail, usage, job, found)
    if job.voice_replies:
        _add_voice(answer, upto)
    return answer


def _add_voice(answer: Answer, message_id: int) -> None:
    """Speak the answer when the customer sent a voice note (the text goes along)."""
    assert answer.text is not None
    with session_scope(write=False) as session:
        message = session.get(Message, message_id)
        if message is None or not media.has_voice_note(session, message_id):
            return
        channel = message.channel
    try:
        answer.media_urls = [media_outbound.voice_reply(answer.text, channel)]
    except RelaydeskError as exc:
        note = f"sent as text: the voice reply failed ({exc.message})"
        answer.detail = f"{answer.detail}; {note}" if answer.detail else note


def compose(greeting: str, answer: str, max_segments: int) -> str:
    """The greeting (if any) and the answer, trimmed to the segment budget at a sentence."""
    body = answer.strip()
    if greeting.strip():
        body = f"{greeting.strip()}\n\n{body}" if body else greeting.strip()
    return trim_to_segments(body, max(1, max_segments))


def _finish(run_id: int, token: str, answer: Answer) -> RunOutcome | None:
    """Store the outcome and the answer in one transaction, only while the claim holds."""
    now = utcnow()
    with session_scope() as session:
        row = session.get(AutomationRun, run_id)
        if row is None or row.state != RunState.WORKING or row.claim_token != token:
            return None  # another worker took over after our lease ran out
        message = session.get(Message, row.inbound_message_id)
        outcome, detail, reply_id = answer.outcome, answer.detail, None
        if answer.text and message is not None and message.conversation_id is not None:
            conversation = session.get(Conversation, message.conversation_id)
            assert conversation is not None
            # A person may have stepped in while the model was thinking; an unsubscribe
            # meanwhile is refused by the send itself.
            blocked = stepped_back(conversation, cfg.read_rules(session))
            if blocked is not None and answer.outcome != RunOutcome.KEYWORD_REPLY:
                outcome, detail = blocked.outcome, blocked.detail
            else:
                reply_id, problem = _send(session, conversation, answer)
                if problem:
                    outcome, detail = problem
        row.state, row.outcome, row.detail = RunState.DONE, outcome, (detail or None)
        row.reply_message_id, row.finished_at, row.lease_until = reply_id, now, None
        row.knowledge = answer.knowledge
        _record_usage(session, row, answer.usage)
        if message is not None and message.conversation_id is not None:
            _track_session(session, message, answer, reply_id, now)
            if reply_id is not None:
                session.execute(
                    update(AutomationRun)
                    .where(
                        AutomationRun.conversation_id == message.conversation_id,
                        AutomationRun.outcome == RunOutcome.MERGED,
                        AutomationRun.reply_message_id.is_(None),
                        AutomationRun.id < run_id,
                    )
                    .values(reply_message_id=reply_id)
                    .execution_options(synchronize_session=False)
                )
        return outcome


def _send(
    session: Session, conversation: Conversation, answer: Answer
) -> tuple[int | None, tuple[RunOutcome, str] | None]:
    """Store the answer through the one send function; (message id, or outcome and why)."""
    assert answer.text is not None
    to = conversation.participant
    if conversation.channel == "whatsapp":
        to = f"whatsapp:{to}"
    request = messaging.SendRequest(
        to=to,
        body=answer.text,
        media_urls=answer.media_urls,
        source=answer.source or "auto_reply",
        from_=conversation.our_address,
    )
    try:
        with session.begin_nested():
            sent = messaging.send(session, request)
    except RelaydeskError as exc:
        if isinstance(exc, OptedOut):
            return None, (RunOutcome.OPTED_OUT, "the customer unsubscribed meanwhile")
        return None, (RunOutcome.FAILED, f"the answer could not be sent: {exc.message}")
    return sent.id, None


def _record_usage(session: Session, row: AutomationRun, usage: list[Completion]) -> None:
    if not usage:
        return
    row.provider, row.model = usage[-1].provider, usage[-1].model
    row.prompt_tokens = sum(u.prompt_tokens for u in usage)
    row.completion_tokens = sum(u.completion_tokens for u in usage)
    add_usage(session, usage)


def add_usage(session: Session, usage: list[Completion]) -> None:
    """Add model calls to the running token totals."""
    totals: dict[tuple[str, str], list[int]] = {}
    for item in usage:
        acc = totals.setdefault((item.provider, item.model[:100]), [0, 0, 0])
        acc[0] += 1
        acc[1] += item.prompt_tokens
        acc[2] += item.completion_tokens
    now = utcnow()
    for (provider, model), (calls, prompt, completion) in sorted(totals.items()):
        insert = dialect_insert(session)(LLMUsage).values(
            provider=provider,
            model=model,
            calls=calls,
            prompt_tokens=prompt,
            completion_tokens=completion,
            updated_at=now,
        )
        session.execute(
            insert.on_conflict_do_update(
                index_elements=["provider", "model"],
                set_={
                    "calls": LLMUsage.calls + insert.excluded.calls,
                    "prompt_tokens": LLMUsage.prompt_tokens + insert.excluded.prompt_tokens,
                    "completion_tokens": LLMUsage.completion_tokens
                    + insert.excluded.completion_tokens,
                    "updated_at": insert.excluded.updated_at,
                },
            )
        )


def _track_session(
    session: Session, message: Message, answer: Answer, reply_id: int | None, now: datetime
) -> None:
    job = answer.job
    if job is None or job.assistant_id is None or message.conversation_id is None:
        return
    conv_id = message.conversation_id
    if answer.outcome == RunOutcome.SESSION_ENDED:
        assistants.close_stale(session, conv_id, job.session_id, now)
        if job.session_id is not None:
            live = session.get(AssistantSession, job.session_id)
            if live is not None and live.ended_at is None:
                live.ended_at, live.end_reason = now, "keyword"
        return
    if reply_id is None:
        return
    if job.session_id is not None:
        live = session.get(AssistantSession, job.session_id)
        if live is not None and live.ended_at is None:
            live.last_activity_at = now
            return
    assistants.close_stale(session, conv_id, None, now)
    session.add(
        AssistantSession(
            conversation_id=conv_id,
            assistant_id=job.assistant_id,
            first_message_id=job.floor_id + 1,
            started_at=now,
            last_activity_at=now,
        )
    )
