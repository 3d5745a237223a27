"""Panel pages of reminders: the Reminders tab (form, list, pause/resume, delete, history)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from relaydesk.auth.sessions import SignedIn
from relaydesk.core.db import session_scope
from relaydesk.core.errors import Invalid
from relaydesk.core.i18n import N_
from relaydesk.deps import Id
from relaydesk.messaging.service import MAX_INPUT
from relaydesk.reminders import service
from relaydesk.web.deps import PanelOperator, PanelViewer
from relaydesk.web.forms import form_datetime
from relaydesk.web.templating import render

router = APIRouter(include_in_schema=False)

RUNS_SHOWN = 20


def _list_context() -> dict[str, Any]:
    with session_scope(write=False) as session:
        return {"tab": "reminders", "reminders": service.list_reminders(session)}


def _section(request: Request, user: SignedIn, notice: str | None = None) -> Response:
    context = {**_list_context(), "notice": notice}
    return render(request, "reminders/_list.html", context, user=user)


def _interval(value: str) -> int:
    if not value.strip().isdigit():
        raise Invalid(
            N_("The interval is a whole number of minutes"),
            params={},
            field="interval_minutes",
        )
    return int(value)


@router.get("/reminders", response_class=HTMLResponse)
def reminders_page(request: Request, user: PanelViewer) -> Response:
    """The Reminders tab: a form for a new reminder and the list with their status."""
    return render(request, "reminders/index.html", _list_context(), user=user)


@router.get("/reminders/list", response_class=HTMLResponse)
def reminders_list(request: Request, user: PanelViewer) -> Response:
    """The list alone (reloaded live when a run sends a message)."""
    return _section(request, user)


@router.post("/reminders", response_class=HTMLResponse)
def create_reminder(
    request: Request,
    user: PanelOperator,
    to: Annotated[str, Form(max_length=64)] = "",
    body: Annotated[str, Form(max_length=MAX_INPUT)] = "",
    interval_minutes: Annotated[str, Form(max_length=10)] = "",
    start_at: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Save a new reminder; without a start time its first message goes out now."""
    with session_scope() as session:
        service.create(
            session,
            to,
            body,
            _interval(interval_minutes),
            form_datetime(start_at, "start_at"),
            user.actor,
        )
    return _section(request, user, "created")


@router.post("/reminders/{reminder_id}/pause", response_class=HTMLResponse)
def pause_reminder(request: Request, reminder_id: Id, user: PanelOperator) -> Response:
    """Stop sending until resumed."""
    with session_scope() as session:
        service.update_reminder(session, reminder_id, user.actor, enabled=False)
    return _section(request, user, "paused")


@router.post("/reminders/{reminder_id}/resume", response_class=HTMLResponse)
def resume_reminder(request: Request, reminder_id: Id, user: PanelOperator) -> Response:
    """Send again, from the next slot of the reminder's cadence."""
    with session_scope() as session:
        service.update_reminder(session, reminder_id, user.actor, enabled=True)
    return _section(request, user, "resumed")


@router.post("/reminders/{reminder_id}/delete", response_class=HTMLResponse)
def delete_reminder(request: Request, reminder_id: Id, user: PanelOperator) -> Response:
    """Delete a reminder (asked to confirm in the browser first)."""
    with session_scope() as session:
        service.delete_reminder(session, reminder_id, user.actor)
    return _section(request, user, "deleted")


@router.get("/reminders/{reminder_id}/runs", response_class=HTMLResponse)
def reminder_runs(request: Request, reminder_id: Id, user: PanelViewer) -> Response:
    """The reminder's latest runs."""
    with session_scope(write=False) as session:
        runs = service.list_runs(session, reminder_id, RUNS_SHOWN)
    return render(request, "reminders/_runs.html", {"runs": runs}, user=user)
