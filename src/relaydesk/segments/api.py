"""REST routes of segments: /api/segments (operators keep them, everyone reads them)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response

from relaydesk.deps import Id, Operator, SessionDep, Viewer, WriteSessionDep
from relaydesk.segments import service
from relaydesk.segments.schemas import (
    CountOut,
    MembersPage,
    Rules,
    SegmentIn,
    SegmentOut,
    SegmentPatch,
)

router = APIRouter(prefix="/api/segments", tags=["segments"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No segment has this id"}}
_BAD_RULES: dict[int | str, dict[str, Any]] = {
    422: {"description": "An unknown label or attribute, or a value of the wrong type"}
}


@router.get("", response_model=list[SegmentOut])
def list_segments(principal: Viewer, session: SessionDep) -> list[SegmentOut]:
    """Every saved segment, by name."""
    return [SegmentOut.model_validate(row) for row in service.list_segments(session)]


@router.post("", response_model=SegmentOut, status_code=201, responses=_BAD_RULES)
def create_segment(payload: SegmentIn, principal: Operator, session: WriteSessionDep) -> SegmentOut:
    """Save a segment: a name and rules that must all hold (audited)."""
    segment = service.create(session, payload.name, payload.rules, principal.actor)
    return SegmentOut.model_validate(segment)


@router.post("/preview", response_model=CountOut, responses=_BAD_RULES)
def preview_segment(payload: Rules, principal: Viewer, session: SessionDep) -> CountOut:
    """Count the contacts that unsaved rules match, and how many a campaign would reach."""
    return service.count(session, payload)


@router.get("/{segment_id}", response_model=SegmentOut, responses=_NOT_FOUND)
def get_segment(segment_id: Id, principal: Viewer, session: SessionDep) -> SegmentOut:
    """One segment."""
    return SegmentOut.model_validate(service.get(session, segment_id))


@router.get("/{segment_id}/count", response_model=CountOut, responses=_NOT_FOUND)
def count_segment(segment_id: Id, principal: Viewer, session: SessionDep) -> CountOut:
    """A saved segment's live count (its members change as contacts do)."""
    segment = service.get(session, segment_id)
    return service.count(session, Rules.model_validate(segment.rules))


@router.get("/{segment_id}/contacts", response_model=MembersPage, responses=_NOT_FOUND)
def segment_contacts(
    segment_id: Id,
    principal: Viewer,
    session: SessionDep,
    cursor: str | None = Query(None, max_length=40),
) -> MembersPage:
    """A page of the segment's contacts (100, by contact id); `next` fetches the following."""
    return service.members(session, segment_id, cursor)


@router.patch("/{segment_id}", response_model=SegmentOut, responses={**_NOT_FOUND, **_BAD_RULES})
def update_segment(
    segment_id: Id, payload: SegmentPatch, principal: Operator, session: WriteSessionDep
) -> SegmentOut:
    """Rename a segment or replace its rules; campaigns already made keep their recipients."""
    segment = service.update(session, segment_id, payload.name, payload.rules, principal.actor)
    return SegmentOut.model_validate(segment)


@router.delete("/{segment_id}", status_code=204, responses=_NOT_FOUND)
def delete_segment(segment_id: Id, principal: Operator, session: WriteSessionDep) -> Response:
    """Delete a segment; campaigns made from it keep their recipients and its name."""
    service.delete(session, segment_id, principal.actor)
    return Response(status_code=204)
