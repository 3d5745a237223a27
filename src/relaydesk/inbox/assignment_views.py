"""The Inbox page's card for automatic assignment (admins switch round-robin on or off)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from relaydesk.core.db import session_scope
from relaydesk.messaging import assignment
from relaydesk.web.deps import PanelAdmin
from relaydesk.web.templating import render

router = APIRouter(include_in_schema=False)


def _card(request: Request, user: PanelAdmin, saved: bool = False) -> Response:
    with session_scope(write=False) as session:
        config = assignment.read_config(session)
        online = [person.display_name for person in assignment.online_operators(session)]
    return render(
        request,
        "inbox/_assignment.html",
        {"assignment": config, "online": online, "saved": saved},
        user=user,
    )


@router.get("/inbox/assignment", response_class=HTMLResponse)
def assignment_card(request: Request, user: PanelAdmin) -> Response:
    """Round-robin on or off, and who is online to receive conversations now."""
    return _card(request, user)


@router.post("/inbox/assignment", response_class=HTMLResponse)
def save_assignment(
    request: Request, user: PanelAdmin, round_robin: Annotated[str, Form(max_length=5)] = ""
) -> Response:
    """Save the switch."""
    with session_scope() as session:
        assignment.save_config(
            session, assignment.AssignmentConfig(round_robin=round_robin == "on"), user.actor
        )
    return _card(request, user, saved=True)
