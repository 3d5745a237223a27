"""Canned answers in the inbox: `/word` in the composer offers them; each person keeps theirs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from relaydesk.auth.models import ROLE_RANK
from relaydesk.contacts.service import participant_number
from relaydesk.core.db import session_scope
from relaydesk.deps import Id
from relaydesk.inbox import canned
from relaydesk.web.deps import PanelOperator
from relaydesk.web.templating import render

router = APIRouter(include_in_schema=False)

SUGGESTED = 8  # what the composer's list shows; typing more narrows it


@router.get("/inbox/{participant}/canned", response_class=HTMLResponse)
def suggest(
    request: Request,
    participant: str,
    user: PanelOperator,
    q: Annotated[str, Query(max_length=canned.SHORTCUT_MAX + 1)] = "",
) -> Response:
    """The canned answers matching `/q`, each filled in for this customer, for the composer."""
    number = participant_number(participant)
    principal = user.principal
    with session_scope(write=False) as session:
        found = canned.search(session, user.user_id, q)[:SUGGESTED]
        answers = [
            {"row": row, "rendered": canned.render(session, row.id, number, principal)}
            for row in found
        ]
    return render(request, "inbox/_canned_list.html", {"answers": answers}, user=user)


def _manage(request: Request, user: Any) -> Response:
    with session_scope(write=False) as session:
        rows = canned.search(session, user.user_id)
    admin = ROLE_RANK[user.role] >= ROLE_RANK["admin"]
    context = {"canned_rows": rows, "is_admin": admin}
    return render(request, "inbox/_manage_canned.html", context, user=user)


@router.get("/inbox/canned/manage", response_class=HTMLResponse)
def manage(request: Request, user: PanelOperator) -> Response:
    """The shared canned answers and the user's own; theirs (and, for admins, shared) to edit."""
    return _manage(request, user)


@router.post("/inbox/canned", response_class=HTMLResponse)
def create(
    request: Request,
    user: PanelOperator,
    shortcut: Annotated[str, Form(max_length=canned.SHORTCUT_MAX * 4)] = "",
    body: Annotated[str, Form(max_length=canned.BODY_MAX * 2)] = "",
    shared: Annotated[bool, Form()] = False,
) -> Response:
    """A new canned answer: the user's own, or shared with everyone (admins)."""
    with session_scope() as session:
        canned.create(session, user.principal, shortcut.strip().removeprefix("/"), body, shared)
    return _manage(request, user)


@router.post("/inbox/canned/{canned_id}/delete", response_class=HTMLResponse)
def delete(request: Request, canned_id: Id, user: PanelOperator) -> Response:
    """Delete a canned answer (asked to confirm first)."""
    with session_scope() as session:
        canned.delete(session, canned_id, user.principal)
    return _manage(request, user)
