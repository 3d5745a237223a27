"""REST routes of campaigns: /api/multi-sms/batches."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from relaydesk.campaigns import export, service
from relaydesk.campaigns.schemas import BatchIn, BatchOut, PreviewIn, PreviewOut, RecipientOut
from relaydesk.deps import Id, Operator, SessionDep, Viewer, WriteSessionDep

router = APIRouter(prefix="/api/multi-sms", tags=["campaigns"])


@router.post(
    "/batches",
    response_model=BatchOut,
    status_code=201,
    responses={422: {"description": "No valid number, too many recipients, or a bad text"}},
)
def create_batch(payload: BatchIn, principal: Operator, session: WriteSessionDep) -> BatchOut:
    """Create a campaign; it is sent in the background at the configured rate."""
    batch = service.create(session, payload.numbers, payload.body, payload.send_at, principal.actor)
    return service.with_counters(session, batch.id)


@router.post("/preview", response_model=PreviewOut)
def preview_batch(payload: PreviewIn, principal: Operator) -> Any:
    """Count valid, duplicate and invalid numbers and the cost, creating nothing."""
    return service.preview(payload.numbers, payload.body)


@router.get("/batches", response_model=list[BatchOut])
def list_batches(
    principal: Viewer, session: SessionDep, limit: int = Query(20, ge=1, le=200)
) -> list[BatchOut]:
    """The newest campaigns first, with their counters."""
    return service.list_batches(session, limit)


@router.get("/batches/{batch_id}", response_model=BatchOut)
def get_batch(batch_id: Id, principal: Viewer, session: SessionDep) -> BatchOut:
    """One campaign with its counters."""
    return service.with_counters(session, batch_id)


@router.get("/batches/{batch_id}/recipients", response_model=list[RecipientOut])
def batch_recipients(batch_id: Id, principal: Viewer, session: SessionDep) -> list[RecipientOut]:
    """Every recipient with its status and, for failures, Twilio's error and its meaning."""
    return service.recipients(session, batch_id)


@router.get(
    "/batches/{batch_id}/recipients.csv",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/csv": {}},
            "description": "UTF-8 with BOM; cells that could start a formula begin with '",
        }
    },
)
def batch_recipients_csv(batch_id: Id, principal: Viewer, session: SessionDep) -> Response:
    """Every recipient's outcome as a CSV file (Excel-ready): status, Twilio's error code and
    its meaning, the message SID, when it was queued and when its status last changed."""
    service.get(session, batch_id)  # an unknown campaign is a 404 before anything streams
    return StreamingResponse(
        export.recipients_csv(batch_id),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="campaign-{batch_id}-recipients.csv"',
            "Cache-Control": "no-store",
        },
    )


@router.post(
    "/batches/{batch_id}/{action}",
    response_model=BatchOut,
    responses={409: {"description": "The campaign's state does not allow it"}},
)
def change_batch(
    batch_id: Id,
    action: Literal["pause", "resume", "cancel"],
    principal: Operator,
    session: WriteSessionDep,
) -> BatchOut:
    """Pause, resume or cancel a campaign."""
    service.change_state(session, batch_id, action, principal.actor)
    return service.with_counters(session, batch_id)
