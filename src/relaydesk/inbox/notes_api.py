"""REST routes for private notes in a conversation and the caller's @mentions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from relaydesk.contacts.service import participant_number
from relaydesk.deps import MAX_ID, Operator, SessionDep, Viewer, WriteSessionDep
from relaydesk.inbox import notes
from relaydesk.inbox.notes import MentionOut, NoteOut

router = APIRouter(tags=["inbox"])

MAX_MENTIONS = 200


class NoteIn(BaseModel):
    """POST /api/conversations/{participant}/notes."""

    model_config = ConfigDict(extra="forbid")

    body: str = Field(
        min_length=1,
        max_length=notes.MAX_BODY,
        description="the note as written; `@Name` (or `@` and an e-mail's local part) "
        "mentions a colleague",
        examples=["@Piotr this customer asked for an invoice, can you take over?"],
    )


class MentionPage(BaseModel):
    """The caller's mentions, newest first."""

    items: list[MentionOut]
    next: str | None = Field(description="cursor for older mentions, or null")
    unread: int = Field(description="how many of the caller's mentions are unread in all")


class MentionsReadIn(BaseModel):
    """POST /api/mentions/read: either `ids` or `participant`."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        default=None, min_length=1, max_length=1000, description="mentions of the caller's"
    )
    participant: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="every mention of the caller's in this customer's conversation",
    )


class MentionsRead(BaseModel):
    """What marking read did."""

    marked: int = Field(description="mentions that were unread and now are read")
    unread: int = Field(description="the caller's unread mentions left")


@router.get(
    "/api/conversations/{participant}/notes",
    response_model=list[NoteOut],
    responses={
        404: {"description": "No conversation with this number"},
        422: {"description": "Not a phone number"},
    },
)
def list_notes(
    participant: str,
    principal: Viewer,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> list[NoteOut]:
    """A customer's private notes, oldest first (the latest `limit`).

    Each carries `kind` "note" and `created_at`, so it merges by time with the thread's
    messages and events.
    """
    return notes.notes_of(session, participant_number(participant), limit)


@router.post(
    "/api/conversations/{participant}/notes",
    status_code=201,
    response_model=NoteOut,
    responses={
        404: {"description": "No conversation with this number"},
        422: {
            "description": "Not a phone number, an empty or too long note, a control "
            "character, or a token that acts as nobody (a note needs an author)"
        },
    },
)
def add_note(
    participant: str, payload: NoteIn, principal: Operator, session: WriteSessionDep
) -> NoteOut:
    """Write a private note in a customer's conversation: for the team, never sent.

    `@Name` mentions an active colleague (display name, case-insensitive, the longest
    that fits; or the e-mail address's local part); each gets one unread mention.
    Mentioning yourself or an unknown name creates none. The note is in the audit log
    as `conversation.note` (without its text).
    """
    return notes.add_note(session, participant_number(participant), payload.body, principal)


@router.get(
    "/api/mentions",
    response_model=MentionPage,
    responses={422: {"description": "A token that acts as nobody, or a bad cursor"}},
)
def list_mentions(
    principal: Viewer,
    session: SessionDep,
    unread: bool = False,
    limit: Annotated[int, Query(ge=1, le=MAX_MENTIONS)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> MentionPage:
    """The caller's own mentions, newest first, with the note, the customer and the author.

    `unread=true`: only those not yet marked read. `unread` in the answer is the
    caller's unread count (the panel's badge).
    """
    items, nxt, count = notes.mentions_of(
        session, principal, unread=unread, limit=limit, cursor=cursor
    )
    return MentionPage(items=items, next=nxt, unread=count)


@router.post(
    "/api/mentions/read",
    response_model=MentionsRead,
    responses={
        404: {"description": "An id that is not one of the caller's mentions (nothing changes)"},
        422: {"description": "Neither or both of ids and participant, or a token of nobody's"},
    },
)
def read_mentions(
    payload: MentionsReadIn, principal: Viewer, session: WriteSessionDep
) -> MentionsRead:
    """Mark the caller's own mentions read: `{ids: [...]}` or `{participant}` (all there)."""
    number = participant_number(payload.participant) if payload.participant is not None else None
    marked, unread = notes.mark_read(session, principal, ids=payload.ids, participant=number)
    return MentionsRead(marked=marked, unread=unread)
