"""Labels in the inbox: operators put them on a conversation, admins keep the list."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from relaydesk.contacts.service import participant_number
from relaydesk.core.db import session_scope
from relaydesk.deps import Id
from relaydesk.inbox import labels
from relaydesk.inbox.views import state_context
from relaydesk.messaging.views import CHANGED
from relaydesk.web.deps import PanelAdmin, PanelOperator
from relaydesk.web.templating import render

router = APIRouter(include_in_schema=False)

Name = Annotated[str, Form(max_length=labels.MAX_NAME * 4)]
Colour = Annotated[str, Form(max_length=7)]
Names = Annotated[list[str] | None, Form(max_length=labels.MAX_PER_CONVERSATION * 5)]


@router.post("/inbox/{participant}/labels", response_class=HTMLResponse)
def set_labels(
    request: Request, participant: str, user: PanelOperator, label: Names = None
) -> Response:
    """Put exactly the ticked labels on the customer's conversations; the state bar again."""
    number = participant_number(participant)
    with session_scope() as session:
        labels.set_labels(session, number, label or [], user.principal)
    return render(
        request,
        "inbox/_state.html",
        state_context(number),
        headers={"HX-Trigger": CHANGED},
        user=user,
    )


def _manage(request: Request, user: Any, changed: bool = False) -> Response:
    with session_scope(write=False) as session:
        rows = labels.list_labels(session)
    return render(
        request,
        "inbox/_manage_labels.html",
        {"label_rows": rows, "palette": labels.PALETTE},
        headers={"HX-Trigger": CHANGED} if changed else None,
        user=user,
    )


@router.get("/inbox/labels/manage", response_class=HTMLResponse)
def manage_labels(request: Request, user: PanelAdmin) -> Response:
    """The admins' list of labels: create, rename, recolour, delete."""
    return _manage(request, user)


@router.post("/inbox/labels", response_class=HTMLResponse)
def create_label(
    request: Request, user: PanelAdmin, name: Name = "", colour: Colour = ""
) -> Response:
    """A new label (its colour, or the palette's least used one)."""
    with session_scope() as session:
        labels.create_label(session, name, colour or None, user.actor)
    return _manage(request, user, changed=True)


@router.post("/inbox/labels/{label_id}", response_class=HTMLResponse)
def update_label(
    request: Request, label_id: Id, user: PanelAdmin, name: Name = "", colour: Colour = ""
) -> Response:
    """Rename or recolour a label."""
    with session_scope() as session:
        labels.update_label(session, label_id, name, colour or None, user.actor)
    return _manage(request, user, changed=True)


@router.post("/inbox/labels/{label_id}/delete", response_class=HTMLResponse)
def delete_label(request: Request, label_id: Id, user: PanelAdmin) -> Response:
    """Delete a label: it comes off every conversation (asked to confirm first)."""
    with session_scope() as session:
        labels.delete_label(session, label_id, user.principal)
    return _manage(request, user, changed=True)
