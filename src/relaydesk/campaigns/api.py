"""REST routes of campaigns: /api/multi-sms/batches."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from relaydesk.campaigns import export, service
from relaydesk.campaigns.schemas import BatchIn, BatchOut, PreviewIn, PreviewOut, RecipientOut
from relaydesk.core.errors import Invalid
from relaydesk.core.i18n import N_
from relaydesk.deps import Id, Operator, SessionDep, Viewer, WriteSessionDep

router = APIRouter(prefix="/api/multi-sms", tags=["campaigns"])


@router.post(
    "/batches",
    response_model=BatchOut,
    status_code=201,
    responses={
        404: {"description": "No segment has this segment_id"},
        422: {"description": "No valid number, too many recipients, or a bad text"},
    },
)
def create_batch(payload: BatchIn, principal: Operator, session: WriteSessionDep) -> BatchOut:
    """Create a campaign to pasted numbers or to a segment's members (exactly one of the
    two); it is sent in the background at the configured rate."""
    batch = service.create(
        session,
        payload.numbers,
        payload.body,
        payload.send_at,
        principal.actor,
        segment_id=payload.segment_id,
    )
    return service.with_counters(session, batch.id)


@router.post(
    "/preview",
    response_model=PreviewOut,
    responses={404: {"description": "No segment has this segment_id"}},
)
def preview_batch(payload: PreviewIn, principal: Operator, session: SessionDep) -> Any:
    """Count valid, duplicate and invalid numbers (or a segment's recipients and the
    members it would skip) and the cost, creating nothing."""
    if payload.segment_id is not None:
        if payload.numbers.strip():
            raise Invalid(
                N_("Give either the numbers or a segment, not both"),
                params={},
                field="segment_id",
            )
        return service.preview_segment(session, payload.segment_id, payload.body)
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
