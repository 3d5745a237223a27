"""REST routes of reminders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from relaydesk.deps import Id, Operator, SessionDep, Viewer, WriteSessionDep
from relaydesk.reminders import service
from relaydesk.reminders.models import Reminder, ReminderRun
from relaydesk.reminders.schemas import ReminderIn, ReminderOut, ReminderPatch, ReminderRunOut

router = APIRouter(tags=["reminders"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such reminder"},
    409: {"description": "The customer unsubscribed, or the WhatsApp window is closed"},
    422: {"description": "Invalid number, text, interval or start time"},
}


@router.get("/api/reminders", response_model=list[ReminderOut])
def list_reminders(principal: Viewer, session: SessionDep) -> Sequence[Reminder]:
    """Every reminder, newest first, with its next run and the last run's outcome."""
    return service.list_reminders(session)


@router.post("/api/reminders", response_model=ReminderOut, status_code=201, responses=_ERRORS)
def create_reminder(
    payload: ReminderIn, principal: Operator, session: WriteSessionDep
) -> ReminderOut:
    """Send `body` to `to` every `interval_minutes`, the first time at `start_at` (or now)."""
    reminder = service.create(
        session,
        payload.to,
        payload.body,
        payload.interval_minutes,
        payload.start_at,
        principal.actor,
    )
    return ReminderOut.model_validate(reminder)


@router.get("/api/reminders/{reminder_id}", response_model=ReminderOut, responses=_ERRORS)
def get_reminder(reminder_id: Id, principal: Viewer, session: SessionDep) -> ReminderOut:
    """One reminder."""
    return ReminderOut.model_validate(service.get(session, reminder_id))


@router.patch("/api/reminders/{reminder_id}", response_model=ReminderOut, responses=_ERRORS)
def update_reminder(
    reminder_id: Id, payload: ReminderPatch, principal: Operator, session: WriteSessionDep
) -> ReminderOut:
    """Change the text or the interval; `enabled: false` pauses, `true` resumes (audited)."""
    reminder = service.update_reminder(
        session, reminder_id, principal.actor, **payload.model_dump(exclude_none=True)
    )
    return ReminderOut.model_validate(reminder)


@router.delete("/api/reminders/{reminder_id}", status_code=204, responses=_ERRORS)
def delete_reminder(reminder_id: Id, principal: Operator, session: WriteSessionDep) -> Response:
    """Delete a reminder and its history (audited); the messages it sent stay."""
    service.delete_reminder(session, reminder_id, principal.actor)
    return Response(status_code=204)


@router.get(
    "/api/reminders/{reminder_id}/runs", response_model=list[ReminderRunOut], responses=_ERRORS
)
def list_runs(
    reminder_id: Id,
    principal: Viewer,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Sequence[ReminderRun]:
    """The reminder's history, newest first: each run's message, or why it sent nothing."""
    return service.list_runs(session, reminder_id, limit)
