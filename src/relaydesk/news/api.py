"""REST routes of the news module: /api/news (sources, scraping, files, index builds, settings)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response

from relaydesk.deps import Admin, Id, Operator, SessionDep, Viewer, WriteSessionDep
from relaydesk.indexes.service import Retrieval
from relaydesk.news import files, service, tasks
from relaydesk.news.schemas import (
    BuildIn,
    CategoryOut,
    DeletedFiles,
    FileOut,
    JobStarted,
    ScrapeIn,
    SettingsIn,
    SettingsOut,
    SourceIn,
    SourceOut,
)

router = APIRouter(prefix="/api/news", tags=["news"])


# --- Sources -------------------------------------------------------------------------------


@router.get("/sources", response_model=list[CategoryOut])
def list_sources(principal: Viewer, session: SessionDep) -> list[CategoryOut]:
    """Categories with their feeds and section pages."""
    return service.list_sources(session)


@router.post(
    "/sources",
    response_model=SourceOut,
    status_code=201,
    responses={409: {"description": "The category already has this source"}},
)
def add_source(payload: SourceIn, principal: Operator, session: WriteSessionDep) -> SourceOut:
    """Add a source to a category (created on first use)."""
    row = service.add_source(session, payload.category, payload.url, payload.kind, principal.actor)
    return SourceOut.model_validate(row)


@router.delete("/sources/{source_id}", status_code=204)
def delete_source(source_id: Id, principal: Operator, session: WriteSessionDep) -> Response:
    """Remove a source (the category's files stay until deleted)."""
    service.delete_source(session, source_id, principal.actor)
    return Response(status_code=204)


# --- Scraping and files --------------------------------------------------------------------


@router.post(
    "/scrape",
    response_model=JobStarted,
    status_code=202,
    responses={409: {"description": "A scrape is already running"}},
)
def scrape(principal: Operator, session: WriteSessionDep, payload: ScrapeIn | None = None) -> Any:
    """Start a fetch of all (or the named) categories that then updates the active index
    (unless `build` is false); follow it at /api/jobs/{job_id}."""
    job = tasks.start_scrape(
        session,
        payload.categories if payload else None,
        principal.actor,
        build=payload.build if payload else True,
    )
    return {"job_id": job.id}


@router.get("/files", response_model=list[FileOut])
def list_files(principal: Viewer) -> Any:
    """The per-category files: <category>.json (metadata) and <category>.txt (text)."""
    return service.list_files()


@router.get(
    "/files/{name}",
    responses={200: {"content": {"text/plain": {}, "application/json": {}}}},
)
def get_file(name: str, principal: Viewer) -> Response:
    """One file's content: the text, or the metadata as JSON."""
    content = files.read_file(service.news_dir(), name)
    if name.endswith(".json"):
        return Response(content, media_type="application/json")
    return PlainTextResponse(content, media_type="text/plain; charset=utf-8")


@router.delete("/files", response_model=DeletedFiles)
def delete_files(principal: Admin, session: WriteSessionDep) -> Any:
    """Delete every news file (the indexes keep what they hold)."""
    deleted = service.delete_all_files(session, principal.actor)
    return {"deleted": deleted}


@router.delete("/files/{name}", status_code=204)
def delete_file(name: str, principal: Admin, session: WriteSessionDep) -> Response:
    """Delete one news file."""
    service.delete_file(session, name, principal.actor)
    return Response(status_code=204)


# --- Index builds (from the news files) ----------------------------------------------------


@router.post(
    "/indices/build",
    response_model=JobStarted,
    status_code=202,
    responses={409: {"description": "A build is already running"}},
)
def build_index(
    principal: Operator, session: WriteSessionDep, payload: BuildIn | None = None
) -> Any:
    """Start building an index from the news files; unchanged passages keep their vectors."""
    payload = payload or BuildIn()
    job = tasks.start_build(session, payload.name, payload.categories, principal.actor)
    return {"job_id": job.id}


# --- Settings (the retrieval part is the indexes' own) -------------------------------------


@router.get("/settings", response_model=SettingsOut)
def get_settings(principal: Viewer, session: SessionDep) -> SettingsOut:
    """Retrieval settings and the daily schedule."""
    return service.settings_view(session)


@router.put("/settings", response_model=SettingsOut)
def put_settings(payload: SettingsIn, principal: Operator, session: WriteSessionDep) -> SettingsOut:
    """Change the retrieval settings and/or the schedule."""
    retrieval_in = payload.retrieval
    schedule_in = payload.schedule
    service.save_settings(
        session,
        principal.actor,
        retrieval=Retrieval(**retrieval_in.model_dump()) if retrieval_in else None,
        schedule=service.Schedule(**schedule_in.model_dump()) if schedule_in else None,
    )
    return service.settings_view(session)
