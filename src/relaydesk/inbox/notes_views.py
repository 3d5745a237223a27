"""Private notes in the inbox's thread, and the signed-in user's @mentions."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from relaydesk.contacts.service import participant_number
from relaydesk.core.db import session_scope
from relaydesk.core.errors import NotFound
from relaydesk.deps import Id
from relaydesk.inbox import notes
from relaydesk.inbox.models import Mention
from relaydesk.messaging.views import CHANGED, THREAD_ENTRIES, thread_part
from relaydesk.web.deps import PanelOperator, PanelViewer
from relaydesk.web.templating import render

router = APIRouter(include_in_schema=False)

MENTIONS_SHOWN = 20


@thread_part
def notes_in_thread(session: Session, number: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The customer's private notes, to sit among the thread's messages and events by time."""
    try:
        found = notes.notes_of(session, number)
    except NotFound:  # no conversation yet: no notes either
        return {}
    return {THREAD_ENTRIES: [{**note.model_dump(), "note": True} for note in found]}


@router.post("/inbox/{participant}/notes", response_class=HTMLResponse)
def add_note(
    request: Request,
    participant: str,
    user: PanelOperator,
    body: Annotated[str, Form(max_length=notes.MAX_BODY * 2)] = "",
) -> Response:
    """Write a private note (never sent); the thread and the mentioned people's badges reload."""
    number = participant_number(participant)
    with session_scope() as session:
        notes.add_note(session, number, body, user.principal)
    return Response(status_code=204, headers={"HX-Trigger": CHANGED})


def _badge(user: Any) -> dict[str, Any]:
    with session_scope(write=False) as session:
        return {"mentions_unread": notes.unread_count(session, user.user_id)}


@router.get("/inbox/mentions/badge", response_class=HTMLResponse)
def mentions_badge(request: Request, user: PanelViewer) -> Response:
    """The "@ 2" badge in the inbox's header (reloaded live)."""
    return render(request, "inbox/_mention_badge.html", _badge(user), user=user)


@router.get("/inbox/mentions", response_class=HTMLResponse)
def mentions_list(request: Request, user: PanelViewer) -> Response:
    """The newest notes that mention the signed-in user: who, where, when, how it starts."""
    with session_scope(write=False) as session:
        items, _, unread = notes.mentions_of(session, user.principal, limit=MENTIONS_SHOWN)
    context = {"mentions": items, "mentions_unread": unread}
    return render(request, "inbox/_mentions.html", context, user=user)


@router.post("/inbox/mentions/{mention_id}/open")
def open_mention(mention_id: Id, user: PanelViewer) -> Response:
    """Mark one mention read and open its conversation in the inbox."""
    with session_scope() as session:
        # NotFound unless the mention is the user's own.
        notes.mark_read(session, user.principal, ids=[mention_id])
        participant = session.scalar(select(Mention.participant).where(Mention.id == mention_id))
    return RedirectResponse("/inbox?" + urlencode({"c": participant or ""}), status_code=303)
