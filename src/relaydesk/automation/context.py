"""What the model reads: the conversation as user/assistant turns, scrubbed, summarised.

The last `history_limit` messages go to the model word for word. Older messages are
not dropped: once enough of them pile up beyond that window they are folded into a
running summary (one extra model call per `batch` messages, not per reply), and the
summary leads the context. Twilio media URLs and SIDs never reach the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Integer, bindparam, select
from sqlalchemy.orm import Session

from relaydesk.ai.providers import ChatTurn, Completion, LLMConfig
from relaydesk.ai.text import scrub_twilio
from relaydesk.automation.models import ConversationSummary
from relaydesk.core.db import dialect_insert, session_scope, utcnow
from relaydesk.messaging.models import Message

# Older messages summarised in one go at most (the first summary of a long history).
SUMMARY_MAX_MESSAGES = 80
MAX_TURN_CHARS = 2000

SUMMARY_PROMPT = (
    "Summarise this earlier part of a text-message conversation between a customer and "
    "a business in at most 120 words: who the customer is, what they asked for, what "
    "was promised or decided, and anything still open. Write plain sentences, in the "
    "conversation's language."
)

Complete = Callable[[LLMConfig, list[ChatTurn]], Completion]


@dataclass(frozen=True)
class Line:
    """One stored message as the model may see it."""

    id: int
    role: str  # user | assistant
    text: str


@dataclass
class Context:
    """The turns to send and the model calls it took to build them."""

    turns: list[ChatTurn]
    lines: list[Line]
    summary: str | None = None
    usage: list[Completion] = field(default_factory=list)


def describe_message(message: Message) -> str:
    """A message's text for a model: body and attachment notes, scrubbed of Twilio links.

    A voice note reads as what was said, an image as what it shows (or that an image
    was received, when no vision model is configured); a shared location and a tapped
    button say so.
    """
    raw = message.raw or {}
    parts = []
    button = raw.get("ButtonText") if message.direction == "inbound" else None
    if button:
        parts.append(f"[tapped the button: {button}]")
    elif message.body and message.body.strip():
        parts.append(message.body.strip())
    for item in message.media or []:
        parts.append(_attachment_note(item))
    place = location_of(raw) if message.direction == "inbound" else None
    if place:
        parts.append(f"[shared a location: {place}]")
    return scrub_twilio(" ".join(parts))[:MAX_TURN_CHARS]


def _attachment_note(item: dict[str, object]) -> str:
    kind = str(item.get("kind") or str(item.get("content_type") or "").split("/")[0] or "file")
    if item.get("transcript"):
        return f"[voice message: {item['transcript']}]"
    if item.get("description"):
        return f"[{kind} received, showing: {item['description']}]"
    if kind == "audio":
        return "[a voice message was received; it could not be transcribed]"
    return f"[{'an' if kind[:1] in 'aeiou' else 'a'} {kind} was received]"


def location_of(raw: dict[str, str]) -> str | None:
    """A shared location as words: its label, address and coordinates (None if none)."""
    lat, lon = raw.get("Latitude"), raw.get("Longitude")
    if not lat or not lon:
        return None
    named = ", ".join(p for p in (raw.get("Label"), raw.get("Address")) if p)
    return f"{named} ({lat}, {lon})" if named else f"{lat}, {lon}"


def _lines(rows: Sequence[Message]) -> list[Line]:
    out = []
    for row in rows:
        text = describe_message(row)
        if text:
            out.append(Line(row.id, "user" if row.direction == "inbound" else "assistant", text))
    return out


def load_lines(
    session: Session, conversation_id: int, *, after_id: int, upto_id: int, limit: int
) -> list[Line]:
    """Up to `limit` newest messages with after_id < id <= upto_id, oldest first."""
    rows = session.scalars(
        _LINES, {"conversation": conversation_id, "after": after_id, "upto": upto_id, "n": limit}
    ).all()
    return _lines(list(reversed(rows)))


# Built once: a batch of answers reads a conversation each (load_lines).
_LINES = (
    select(Message)
    .where(
        Message.conversation_id == bindparam("conversation"),
        Message.id > bindparam("after"),
        Message.id <= bindparam("upto"),
    )
    .order_by(Message.id.desc())
    .limit(bindparam("n", type_=Integer))
)


def turns_for(system_prompt: str, summary: str | None, lines: Sequence[Line]) -> list[ChatTurn]:
    """System prompt, the summary, then the lines with consecutive same-role lines merged."""
    system = scrub_twilio(system_prompt.strip())
    if summary:
        system += "\n\nEarlier in this conversation (summary): " + scrub_twilio(summary)
    turns = [ChatTurn("system", system)]
    for line in lines:
        last = turns[-1]
        if last.role == line.role:
            turns[-1] = ChatTurn(last.role, f"{last.content}\n{line.text}")
        else:
            turns.append(ChatTurn("user" if line.role == "user" else "assistant", line.text))
    return turns


@dataclass(frozen=True)
class History:
    """What `build` reads of a conversation: its summary, the messages after it, and
    older ones to fold into the summary first (none while the summary is current)."""

    summary: str | None
    lines: list[Line]
    older: list[Line]


def read_history(
    session: Session,
    conversation_id: int,
    *,
    upto_id: int,
    floor_id: int,
    history_limit: int,
    summaries: dict[int, ConversationSummary] | None = None,
) -> History:
    """The conversation as of message `upto_id`, after `floor_id`, as `build` needs it.
    `summaries`: the stored summaries when the caller read them already (`summaries`)."""
    limit = max(1, history_limit)
    batch = max(limit, 10)
    stored = (
        summaries.get(conversation_id)
        if summaries is not None
        else session.get(ConversationSummary, conversation_id)
    )
    after, text = floor_id, None
    if stored is not None and stored.covers_until_id >= floor_id:
        after, text = stored.covers_until_id, stored.summary
    lines = load_lines(
        session, conversation_id, after_id=after, upto_id=upto_id, limit=limit + batch
    )
    older: list[Line] = []
    if len(lines) >= limit + batch:
        older = load_lines(
            session,
            conversation_id,
            after_id=after,
            upto_id=lines[-limit].id - 1,
            limit=SUMMARY_MAX_MESSAGES,
        )
    return History(text, lines, older)


def summaries(session: Session, conversation_ids: set[int]) -> dict[int, ConversationSummary]:
    """The stored summaries of these conversations (those that have one), in one query."""
    if not conversation_ids:
        return {}
    found = session.scalars(
        select(ConversationSummary).where(ConversationSummary.conversation_id.in_(conversation_ids))
    )
    return {summary.conversation_id: summary for summary in found}


def build(
    conversation_id: int | None,
    *,
    upto_id: int,
    floor_id: int,
    system_prompt: str,
    history_limit: int,
    llm: LLMConfig,
    complete: Complete,
    extra_user_text: str | None = None,
    history: History | None = None,
) -> Context:
    """The context for answering the conversation as of message `upto_id`.

    Only messages after `floor_id` count (an assistant session's start). `history` is
    the conversation read beforehand (`read_history`), else it is read here. No database
    transaction stays open during the summary's model call.
    """
    if history is None and conversation_id is not None:
        with session_scope(write=False) as session:
            history = read_history(
                session,
                conversation_id,
                upto_id=upto_id,
                floor_id=floor_id,
                history_limit=history_limit,
            )
    summary_text = history.summary if history else None
    lines = list(history.lines) if history else []
    usage: list[Completion] = []
    if history is not None and conversation_id is not None and history.older:
        done = summarise(summary_text, history.older, llm, complete)
        usage.append(done)
        summary_text = done.text.strip()
        _store_summary(conversation_id, summary_text, history.older[-1].id)
        lines = lines[-max(1, history_limit) :]
    if extra_user_text:
        lines = [*lines, Line(0, "user", scrub_twilio(extra_user_text)[:MAX_TURN_CHARS])]
    return Context(turns_for(system_prompt, summary_text, lines), lines, summary_text, usage)


def summarise(
    previous: str | None, lines: Sequence[Line], llm: LLMConfig, complete: Complete
) -> Completion:
    """Fold `lines` (and the previous summary) into a new summary with one model call."""
    transcript = "\n".join(
        f"{'Customer' if line.role == 'user' else 'Business'}: {line.text}" for line in lines
    )
    if previous:
        transcript = f"Summary so far: {previous}\n\n{transcript}"
    turns = [ChatTurn("system", SUMMARY_PROMPT), ChatTurn("user", scrub_twilio(transcript))]
    return complete(llm, turns)


def _store_summary(conversation_id: int, text: str, covers_until_id: int) -> None:
    with session_scope() as session:
        insert = dialect_insert(session)(ConversationSummary).values(
            conversation_id=conversation_id,
            summary=text,
            covers_until_id=covers_until_id,
            updated_at=utcnow(),
        )
        session.execute(
            insert.on_conflict_do_update(
                index_elements=["conversation_id"],
                set_={
                    "summary": insert.excluded.summary,
                    "covers_until_id": insert.excluded.covers_until_id,
                    "updated_at": insert.excluded.updated_at,
                },
                # A slower concurrent run must not put an older summary back.
                where=ConversationSummary.covers_until_id < insert.excluded.covers_until_id,
            )
        )
