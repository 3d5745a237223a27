"""GET /api/search: messages, contacts and conversations that contain a word or a number."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from relaydesk.core.pagination import cursor_id, encode_cursor
from relaydesk.deps import SessionDep, Viewer
from relaydesk.messaging import search

router = APIRouter(tags=["search"])

Span = Annotated[list[int], Field(min_length=2, max_length=2)]


class MessageHit(BaseModel):
    """A message that matches: the part of its text around the match, and where it is."""

    id: int
    participant: str
    name: str | None = None
    direction: str
    channel: str
    status: str
    created_at: datetime
    conversation_id: int | None = None
    snippet: str = Field(description="its text (body, transcripts) around the first match")
    highlights: list[Span] = Field(description="[start, end) of each match in `snippet`")


class ContactHit(BaseModel):
    """A contact (a number on one channel) whose name, number, note or attributes match."""

    id: int
    participant: str
    channel: str
    name: str | None = None
    opted_out: bool
    snippet: str
    highlights: list[Span]


class ConversationHit(BaseModel):
    """A conversation whose customer or messages match; `match` is its newest matching
    message (none when only the customer matched)."""

    id: int
    participant: str
    channel: str
    name: str | None = None
    status: str
    last_message_at: datetime | None = None
    match: MessageHit | None = None


class SearchPage(BaseModel):
    """One page of results, newest first; `next` asks for the following page."""

    type: Literal["messages", "contacts", "conversations"]
    items: list[MessageHit] | list[ContactHit] | list[ConversationHit]
    next: str | None = None


@router.get("/api/search", response_model=SearchPage)
def search_everything(
    principal: Viewer,
    session: SessionDep,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=200,
            description="words (each found in any form: 'zamówienia' finds 'zamówienie'), "
            "or a number or part of one ('600 123')",
        ),
    ],
    type: Literal["messages", "contacts", "conversations"] = "messages",
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SearchPage:
    """Search message text (including transcripts), contacts and conversations.

    Newest first. Every word must occur (letters compared without case and diacritics);
    a number is also looked for among the contacts' numbers. At least three letters or
    digits: a shorter query is refused (422).
    """
    before = cursor_id(cursor) if cursor else None
    items, next_before = search.find(session, q, type, before=before, limit=limit)
    return SearchPage.model_validate(
        {
            "type": type,
            "items": items,
            "next": encode_cursor(next_before) if next_before is not None else None,
        }
    )
