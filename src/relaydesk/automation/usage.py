"""What automatic answers cost and which assistant session they continue, stored."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from relaydesk.ai.providers import Completion
from relaydesk.automation import assistants
from relaydesk.automation.answering import Answer
from relaydesk.automation.models import (
    AssistantSession,
    AutomationRun,
    LLMUsage,
    RunOutcome,
)
from relaydesk.core.db import dialect_insert, utcnow
from relaydesk.messaging.models import Message

log = logging.getLogger(__name__)


def record_usage(session: Session, row: AutomationRun, usage: list[Completion]) -> None:
    """The run's model calls, on the run and in the running totals."""
    if usage:
        note_usage(row, usage)
        add_usage(session, usage)


def note_usage(row: AutomationRun, usage: list[Completion]) -> None:
    """The run's model calls on the run (the totals are the caller's: `add_usage`)."""
    if not usage:
        return
    row.provider, row.model = usage[-1].provider, usage[-1].model
    row.prompt_tokens = sum(u.prompt_tokens for u in usage)
    row.completion_tokens = sum(u.completion_tokens for u in usage)


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


def track_session(
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
