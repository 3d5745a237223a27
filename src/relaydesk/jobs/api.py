"""REST routes of jobs: /api/jobs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from relaydesk.deps import Id, SessionDep, Viewer
from relaydesk.jobs import service
from relaydesk.jobs.schemas import JobOut

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobOut, responses={404: {"description": "No such job"}})
def get_job(job_id: Id, principal: Viewer, session: SessionDep) -> Any:
    """A job's status and progress (poll it while it runs)."""
    return service.view(service.get(session, job_id))


@router.get("", response_model=list[JobOut])
def list_jobs(
    principal: Viewer,
    session: SessionDep,
    kind: str | None = Query(None, max_length=40),
    limit: int = Query(20, ge=1, le=200),
) -> Any:
    """The newest jobs first (of one kind with `kind`)."""
    return [service.view(job) for job in service.latest(session, kind, limit)]
