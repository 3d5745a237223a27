"""Tools relaydesk carries out itself: no URL, nothing for the business to host.

- hand_over: the bot stops answering in this conversation, the conversation is opened
  for the team and its operators are told (a note with a mention each). It takes
  effect with the answer, in the transaction that stores it (pipeline._finish): the
  customer still gets the bot's last words ("a colleague will write to you"), and a
  retried run cannot hand over twice.
- schedule_message: a message to this customer at a later time (a scheduled message:
  it shows in the thread and can be deleted before it goes; opt-out and the WhatsApp
  window are checked again then).
- search_knowledge: the passages of the answer's knowledge index for a query.

The model sees each as a function with the parameters below; the admin only chooses to
offer it (and may rename it or reword its description).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from relaydesk.core.db import session_scope, utcnow
from relaydesk.core.errors import RelaydeskError
from relaydesk.messaging import service as messaging
from relaydesk.messaging.models import Conversation, Message, MessageStatus

HAND_OVER = "hand_over"
SCHEDULE = "schedule_message"
SEARCH = "search_knowledge"
MAX_SCHEDULE_DAYS = 90


@dataclass(frozen=True)
class Builtin:
    """What the model is told about a built-in tool."""

    description: str
    parameters: dict[str, Any]


BUILTINS: dict[str, Builtin] = {
    HAND_OVER: Builtin(
        "Pass the conversation to a person of the team: use it when the customer asks for "
        "a human, is upset, or needs something you cannot do. After it, tell the customer "
        "that a colleague will write to them; you will not answer again here.",
        {
            "type": "object",
            "properties": {
                "reason": {
                    "type": "string",
                    "maxLength": 500,
                    "description": "one sentence for the team: why a person is needed",
                }
            },
            "required": ["reason"],
        },
    ),
    SCHEDULE: Builtin(
        "Send this customer a message later, for example a reminder of an appointment. "
        "Give the time with its UTC offset.",
        {
            "type": "object",
            "properties": {
                "text": {"type": "string", "minLength": 1, "maxLength": 1600},
                "send_at": {
                    "type": "string",
                    "description": "ISO 8601 date and time with offset, e.g. "
                    "2026-12-07T09:00:00+01:00",
                },
            },
            "required": ["text", "send_at"],
        },
    ),
    SEARCH: Builtin(
        "Search the business's own knowledge (articles, FAQ) for facts to answer from.",
        {
            "type": "object",
            "properties": {"query": {"type": "string", "minLength": 1, "maxLength": 500}},
            "required": ["query"],
        },
    ),
}


@dataclass(frozen=True)
class Scene:
    """Where a built-in tool acts: the run's conversation and customer."""

    run_id: int
    conversation_id: int | None
    participant: str | None
    knowledge_index: str | None
    dry_run: bool = False  # the test box: nothing is changed
    source: str = "ai"  # the source of a message it schedules ("ai", "assistant")


def _text(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False)


def search(index: str | None, query: str) -> tuple[int, str]:
    """(200, passages as JSON) or (404/503, why not)."""
    from relaydesk.automation import grounding

    if index is None:
        return 404, _text({"error": "no knowledge index is set for this assistant"})
    found = grounding.find(index, query)
    if found.problem and not found.passages:
        return 404, _text({"error": str(found.problem)})
    passages = [
        {"title": p["title"], "url": p["url"], "text": str(p["text"])[:1500]}
        for p in found.passages[:4]
    ]
    return 200, _text({"passages": passages})


def schedule(scene: Scene, text: str, send_at: str, source: str) -> tuple[int, str]:
    """A scheduled message to this customer; (201, its id and time) or (422, why not).

    Asked twice for the same text at the same time (a retried run), it finds the first.
    """
    try:
        when = datetime.fromisoformat(send_at)
    except ValueError:
        return 422, _text({"error": "send_at is not an ISO 8601 date and time"})
    if when.tzinfo is None:
        return 422, _text({"error": "send_at needs its UTC offset, e.g. +01:00"})
    now = utcnow()
    if when <= now or when > now + timedelta(days=MAX_SCHEDULE_DAYS):
        return 422, _text(
            {"error": f"send_at must be in the future, within {MAX_SCHEDULE_DAYS} days"}
        )
    if scene.conversation_id is None:
        return 422, _text({"error": "there is no customer to write to"})
    if scene.dry_run:
        return 200, _text({"would_schedule": {"text": text, "send_at": when.isoformat()}})
    try:
        with session_scope() as session:
            conversation = session.get(Conversation, scene.conversation_id)
            if conversation is None:
                return 422, _text({"error": "the conversation is gone"})
            made = session.scalar(
                select(Message.id).where(
                    Message.conversation_id == conversation.id,
                    Message.status == MessageStatus.SCHEDULED,
                    Message.scheduled_at == when,
                    Message.body == text,
                )
            )
            if made is None:
                to = conversation.participant
                if conversation.channel == "whatsapp":
                    to = f"whatsapp:{to}"
                request = messaging.SendRequest(
                    to=to, body=text, source=source, from_=conversation.our_address, send_at=when
                )
                made = messaging.send(session, request).id
            return 201, _text({"scheduled": made, "send_at": when.isoformat()})
    except RelaydeskError as exc:
        return 422, _text({"error": exc.message})


def hand_over_result(reason: str, dry_run: bool) -> tuple[int, str]:
    """What the model is told; the hand-over itself is stored with the answer."""
    if dry_run:
        return 200, _text({"would_hand_over": reason})
    return 200, _text(
        {"handed_over": True, "next": "tell the customer a colleague will write to them"}
    )
