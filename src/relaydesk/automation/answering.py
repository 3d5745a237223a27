"""Turning a decision into the text that goes out: the model call (no transaction open),
grounding, the assistant's greeting and an optional voice reply."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relaydesk.ai import providers
from relaydesk.ai.providers import ChatTurn, Completion, LLMConfig, LLMError
from relaydesk.ai.text import trim_to_segments
from relaydesk.automation import acting, confirming, context
from relaydesk.automation import grounding as grounding_of
from relaydesk.automation import tools as tools_of
from relaydesk.automation.builtins import Scene
from relaydesk.automation.models import (
    AssistantTool,
    AutomationRun,
    RunOutcome,
)
from relaydesk.automation.policy import Decision, LLMJob
from relaydesk.core.config import get_settings
from relaydesk.core.db import session_scope
from relaydesk.core.errors import NotFound, RelaydeskError
from relaydesk.core.i18n import N_
from relaydesk.media import outbound as media_outbound
from relaydesk.media import service as media
from relaydesk.messaging.models import Message

log = logging.getLogger(__name__)


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
    ooo_period: datetime | None = None  # the closed period an out-of-office answer is for
    tool_calls: list[dict[str, Any]] | None = None  # what the model called (acting)
    hand_over: str | None = None  # the model handed the conversation over, and why


def complete(llm: LLMConfig, turns: list[ChatTurn]) -> Completion:
    """The model call with the configured retries for transient errors."""
    settings = get_settings()
    return providers.complete(
        llm,
        turns,
        retries=settings.llm_retries,
        backoff_seconds=settings.llm_retry_backoff_seconds,
    )


def needs_model(decision: Decision) -> bool:
    """Whether answering the decision calls a model (otherwise `ask` returns at once)."""
    return decision.job is not None and decision.outcome != RunOutcome.SESSION_ENDED


def ask(
    decision: Decision,
    run_id: int,
    journal: Callable[[list[dict[str, Any]]], None] | None = None,
    prepared: Prepared | None = None,
) -> Answer:
    """The answer to a decided run: the model asked (with no transaction open) when the
    decision needs it. `prepared` is what the run's model call reads from the database,
    read with its decision (`prepare`), else it is read here."""
    job = decision.job
    if job is None or not needs_model(decision):
        return Answer(
            decision.outcome,
            decision.source,
            decision.text,
            decision.detail,
            job=job,
            ooo_period=decision.ooo_period,
        )
    if prepared is None:
        with session_scope(write=False) as session:
            prepared = prepare(session, [(run_id, decision)]).get(run_id)
    assert prepared is not None
    upto, conversation_id = prepared.upto, prepared.conversation_id
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
            history=prepared.history,
        )
        usage.extend(ctx.usage)
        turns, found, note = ctx.turns, None, None
        if job.knowledge_index:
            customer = "\n".join(line.text for line in ctx.lines if line.role == "user")
            grounding = grounding_of.find(job.knowledge_index, customer[-2000:])
            turns = grounding_of.ground(ctx.turns, grounding, job.llm.provider)
            found, note = grounding.record(), grounding.problem
        called: list[dict[str, Any]] | None = None
        handed_over: str | None = None
        offered = prepared.tools
        if offered:
            scene = Scene(
                run_id,
                conversation_id,
                None,
                job.knowledge_index,
                source=decision.source or "ai",
            )
            settled = confirming.settle(scene, upto)
            talk = acting.converse(
                job.llm,
                turns,
                offered,
                scene,
                prior=prepared.prior,
                settled=settled,
                journal=journal,
            )
            done, called = talk.completion, [acting.recorded(c) for c in talk.calls]
            handed_over = talk.hand_over
        else:
            done = complete(job.llm, turns)
        usage.append(done)
    except LLMError as exc:
        return Answer(
            RunOutcome.FAILED,
            decision.source,
            job.fallback.strip() or None,
            N_("the model could not answer: %(reason)s") % {"reason": exc},
            usage,
            job,
        )
    text = compose(job.greeting, done.text, job.max_segments)
    if not text:
        return Answer(
            RunOutcome.FAILED,
            decision.source,
            job.fallback.strip() or None,
            N_("the model gave an empty answer"),
            usage,
            job,
        )
    detail = N_("answered without knowledge: %(reason)s") % {"reason": note} if note else None
    answer = Answer(decision.outcome, decision.source, text, detail, usage, job, found)
    answer.tool_calls, answer.hand_over = called, handed_over
    if job.voice_replies:
        _add_voice(answer, upto)
    return answer


@dataclass(frozen=True)
class Prepared:
    """What asking the model about a run reads from the database."""

    upto: int  # the inbound message answered
    conversation_id: int | None
    prior: list[dict[str, Any]]  # an earlier attempt's tool calls (a retried run)
    history: context.History | None
    tools: list[AssistantTool]  # detached rows


def prepare(session: Session, runs: Sequence[tuple[int, Decision]]) -> dict[int, Prepared]:
    """What the model calls of these decided runs read, in `session` and set-wise: the
    runs in one query, each conversation's history, each assistant's tools once. Read
    with their decisions, a batch's model threads open no transaction before their
    calls. Runs that need no model are left out."""
    jobs = {run_id: d.job for run_id, d in runs if d.job is not None and needs_model(d)}
    if not jobs:
        return {}
    rows = session.execute(
        select(
            AutomationRun.id,
            AutomationRun.inbound_message_id,
            AutomationRun.conversation_id,
            AutomationRun.tool_calls,
        ).where(AutomationRun.id.in_(jobs))
    ).all()
    tools: dict[int | None, list[AssistantTool]] = {}
    prepared: dict[int, Prepared] = {}
    summaries = context.summaries(session, {row.conversation_id for row in rows} - {None})
    for run_id, upto, conversation_id, prior in rows:
        job = jobs[run_id]
        history = None
        if conversation_id is not None:
            history = context.read_history(
                session,
                conversation_id,
                upto_id=upto,
                floor_id=job.floor_id,
                history_limit=job.history_limit,
                summaries=summaries,
            )
        offered: list[AssistantTool] = []
        if job.llm.provider == "openai":
            if job.assistant_id not in tools:
                tools[job.assistant_id] = _offered(session, job.assistant_id)
            offered = tools[job.assistant_id]
        prepared[run_id] = Prepared(upto, conversation_id, list(prior or []), history, offered)
    return prepared


def tools_for(assistant_id: int | None) -> list[AssistantTool]:
    """The tools the model may call: the assistant's, or the AI's (detached rows)."""
    with session_scope(write=False) as session:
        return _offered(session, assistant_id)


def _offered(session: Session, assistant_id: int | None) -> list[AssistantTool]:
    """`tools_for` in `session`; the rows are taken out of it (read after it ends)."""
    try:
        found = acting.offered(tools_of.list_tools(session, assistant_id))
    except NotFound:
        return []  # the assistant was deleted since the decision: no tools
    for tool in found:
        session.expunge(tool)
    return found


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
        note = N_("sent as text: the voice reply failed (%(reason)s)") % {"reason": exc.message}
        answer.detail = f"{answer.detail}; {note}" if answer.detail else note


def compose(greeting: str, answer: str, max_segments: int) -> str:
    """The greeting (if any) and the answer, trimmed to the segment budget at a sentence."""
    body = answer.strip()
    if greeting.strip():
        body = f"{greeting.strip()}\n\n{body}" if body else greeting.strip()
    return trim_to_segments(body, max(1, max_segments))
