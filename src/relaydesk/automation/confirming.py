"""Tools that change something wait for the customer's yes.

When the model calls a `confirm` tool, nothing is called: the call is stored as a
pending confirmation of the conversation (one row per asking call, however often the
run is retried) and the model is told to ask the customer. The customer's next message
settles it before the model is asked again: a clear yes ("tak", "yes", "ok",
"potwierdzam" …) makes the call, a clear no ("nie", "no", "anuluj" …) drops it, anything
else leaves it waiting until it expires (CONFIRM_MINUTES). Only the customer's own words
count, never the model's reading of them, and a newer request for the same tool
replaces an older one.

Exactly once: the run of the agreeing message claims the row (pending → calling) in a
transaction of its own before calling, sends an idempotency key derived from the row,
and keeps the result on the row (done). A retry of that run finds the row it claimed:
done rows are not called again, a call cut short by a crash is made again with the
same key.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from relaydesk.automation import tool_calls
from relaydesk.automation.builtins import Scene
from relaydesk.automation.models import AssistantTool, ConfirmationState, ToolConfirmation
from relaydesk.automation.tool_calls import ToolResult
from relaydesk.core.db import session_scope, utcnow
from relaydesk.messaging.models import Message

CONFIRM_MINUTES = 30

_YES = {
    "tak", "yes", "y", "t", "ok", "okay", "okej", "oki", "potwierdzam", "zgoda", "zgadzam",
    "jasne", "pewnie", "dobrze", "prosze", "poprosze", "confirm", "confirmed", "sure",
    "yep", "yeah", "agreed", "zatwierdzam", "rezerwuj", "zamawiam",
}  # fmt: skip
_NO = {
    "nie", "no", "n", "nope", "anuluj", "cancel", "stop", "rezygnuje", "not", "nah",
    "odwolaj", "wstrzymaj", "czekaj", "wait", "dont", "don't",
}  # fmt: skip
_WORD = re.compile(r"[\w']+")

Verdict = Literal["yes", "no"]


def _plain(text: str) -> str:
    text = text.replace("ł", "l").replace("Ł", "L")
    folded = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in folded if not unicodedata.combining(c))


def verdict(text: str) -> Verdict | None:
    """The customer's answer to "shall I?": yes, no, or None when it is not clear.

    Yes only when the message is short, starts with a yes-word and holds no no-word
    ("tak, ale nie w piątek" is not a yes).
    """
    if any(ord(c) < 0x20 and c not in "\t\n\r" for c in text):
        return None  # not something a person typed
    words = _WORD.findall(_plain(text))
    if not words or len(words) > 12:
        return None
    if any(word in _NO for word in words):
        return "no"
    return "yes" if words[0] in _YES else None


@dataclass(frozen=True)
class Settled:
    """A confirmation the customer's message settled, as the model is told of it."""

    row_id: int
    tool: AssistantTool
    arguments: dict[str, Any]
    result: ToolResult
    state: Literal["confirmed", "declined"]


def asked(tool: AssistantTool, arguments: dict[str, Any], scene: Scene, key: str) -> ToolResult:
    """Store the call for the customer's yes (once per key); what the model is told."""
    problem = tool_calls.check_arguments(tool, arguments)
    if problem:
        return ToolResult(None, 0, f"The tool failed: {problem}", error=problem)
    if scene.conversation_id is None:
        return ToolResult(None, 0, "The tool failed: no conversation", error="no conversation")
    if scene.dry_run:
        return ToolResult(None, 0, _awaiting(tool), error=None)
    now = utcnow()
    try:
        with session_scope() as session:
            exists = session.scalar(select(ToolConfirmation.id).where(ToolConfirmation.key == key))
            if exists is None:
                session.execute(
                    update(ToolConfirmation)
                    .where(
                        ToolConfirmation.conversation_id == scene.conversation_id,
                        ToolConfirmation.tool_id == tool.id,
                        ToolConfirmation.state == ConfirmationState.PENDING,
                    )
                    .values(state=ConfirmationState.SUPERSEDED, decided_at=now)
                    .execution_options(synchronize_session=False)
                )
                session.add(
                    ToolConfirmation(
                        key=key,
                        tool_id=tool.id,
                        conversation_id=scene.conversation_id,
                        run_id=scene.run_id,
                        arguments=arguments,
                        state=ConfirmationState.PENDING,
                        created_at=now,
                        expires_at=now + timedelta(minutes=CONFIRM_MINUTES),
                    )
                )
    except IntegrityError:
        pass  # the same run, retried, stored it meanwhile
    return ToolResult(None, 0, _awaiting(tool), error=None)


def _awaiting(tool: AssistantTool) -> str:
    return (
        f"Not done yet: {tool.name} changes something, so the customer must agree first. "
        "Tell the customer exactly what you are about to do and ask them to reply YES "
        f"(or TAK) to confirm; it is done when they do (within {CONFIRM_MINUTES} minutes)."
    )


def settle(scene: Scene, message_id: int) -> list[Settled]:
    """Settle the conversation's confirmations with the customer's message `message_id`.

    Returns what the model should hear about: the calls made (or found made, on a
    retry of this run) and the ones the customer refused. One indexed read when the
    conversation has nothing waiting (the usual case).
    """
    if scene.conversation_id is None or scene.dry_run:
        return []
    now = utcnow()
    with session_scope(write=False) as session:
        rows = list(
            session.execute(
                select(ToolConfirmation, AssistantTool)
                .join(AssistantTool, AssistantTool.id == ToolConfirmation.tool_id)
                .where(ToolConfirmation.conversation_id == scene.conversation_id)
                .where(
                    (ToolConfirmation.state == ConfirmationState.PENDING)
                    | (ToolConfirmation.confirmed_run_id == scene.run_id)
                )
                .order_by(ToolConfirmation.id)
            )
        )
        if not rows:
            return []
        text = session.scalar(select(Message.body).where(Message.id == message_id)) or ""
        for row, tool in rows:
            session.expunge(row)
            session.expunge(tool)
    answer = verdict(text)
    settled: list[Settled] = []
    for row, tool in rows:
        if row.confirmed_run_id == scene.run_id and row.state == ConfirmationState.DONE:
            settled.append(_replayed(row, tool))  # this run, retried: already called
        elif row.confirmed_run_id == scene.run_id and row.state == ConfirmationState.CALLING:
            settled.append(_call(row, tool, scene))  # cut short: again, with the same key
        elif row.confirmed_run_id == scene.run_id and row.state == ConfirmationState.DECLINED:
            settled.append(_declined(row, tool))  # this run, retried: the no still stands
        elif row.state != ConfirmationState.PENDING or row.run_id == scene.run_id:
            continue  # asked in this very run: the customer has not answered yet
        elif row.expires_at <= now:
            _decide(row.id, ConfirmationState.EXPIRED, scene.run_id)
        elif answer == "no" and _decide(row.id, ConfirmationState.DECLINED, scene.run_id):
            settled.append(_declined(row, tool))
        elif answer == "yes" and _decide(row.id, ConfirmationState.CALLING, scene.run_id):
            settled.append(_call(row, tool, scene))
    return settled


def _declined(row: ToolConfirmation, tool: AssistantTool) -> Settled:
    refused = ToolResult(None, 0, "The customer said no: it was not done.", error=None)
    return Settled(row.id, tool, row.arguments, refused, "declined")


def _decide(row_id: int, state: ConfirmationState, run_id: int) -> bool:
    """Move a pending row on; False when another run settled it first."""
    with session_scope() as session:
        changed = session.execute(
            update(ToolConfirmation)
            .where(
                ToolConfirmation.id == row_id,
                ToolConfirmation.state == ConfirmationState.PENDING,
            )
            .values(state=state, decided_at=utcnow(), confirmed_run_id=run_id)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    return bool(changed)


def _call(row: ToolConfirmation, tool: AssistantTool, scene: Scene) -> Settled:
    from relaydesk.automation import acting

    key = tool_calls.idempotency_key(f"confirmation:{row.id}", tool.name, row.arguments)
    result = acting.carry_out(tool, row.arguments, scene, key)
    with session_scope() as session:
        session.execute(
            update(ToolConfirmation)
            .where(ToolConfirmation.id == row.id)
            .values(
                state=ConfirmationState.DONE,
                result={
                    "status": result.status,
                    "latency_ms": result.latency_ms,
                    "content": result.excerpt,
                    "error": result.error,
                },
            )
            .execution_options(synchronize_session=False)
        )
    return Settled(row.id, tool, row.arguments, result, "confirmed")


def _replayed(row: ToolConfirmation, tool: AssistantTool) -> Settled:
    kept = row.result or {}
    result = ToolResult(
        kept.get("status"),
        int(kept.get("latency_ms") or 0),
        str(kept.get("content") or ""),
        error=kept.get("error"),
    )
    return Settled(row.id, tool, row.arguments, result, "confirmed")
