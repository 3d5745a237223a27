"""REST routes of the news module: /api/news (sources, scraping, files, indexes, retrieval)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from relaydesk.core.db import session_scope
from relaydesk.core.names import content_disposition
from relaydesk.deps import Admin, Id, Operator, SessionDep, Viewer, WriteSessionDep
from relaydesk.news import files, indexes, retrieval, service, tasks
from relaydesk.news.schemas import (
    BuildIn,
    CategoryOut,
    DeletedFiles,
    FileOut,
    ImportOut,
    IndexOut,
    JobStarted,
    ScrapeIn,
    SettingsIn,
    SettingsOut,
    SourceIn,
    SourceOut,
    StatusOut,
    TestIn,
    TestOut,
)

router = APIRouter(prefix="/api/news", tags=["news"])

IndexName = Annotated[str | None, Query(max_length=63)]


# --- Sources -------------------------------------------------------------------------------


@router.get("/sources", response_model=list[CategoryOut])
def list_sources(principal: Viewer, session: SessionDep) -> Any:
    """Categories with their feeds and section pages."""
    return service.list_sources(session)


@router.post(
    "/sources",
    response_model=SourceOut,
    status_code=201,
    responses={409: {"description": "The category already has this source"}},
)
def add_source(payload: SourceIn, principal: Operator, session: WriteSessionDep) -> Any:
    """Add a source to a category (created on first use)."""
    row = service.add_source(session, payload.category, payload.url, payload.kind, principal.actor)
    return service.source_dict(row)


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
    """Start a scrape of all (or the named) categories; follow it at /api/jobs/{job_id}."""
    job = tasks.start_scrape(session, payload.categories if payload else None, principal.actor)
    return {"job_id": job.id}


@router.get("/files", response_model=list[FileOut])
def list_files(principal: Viewer) -> Any:
    """The per-category files: <category>.json (metadata) and <category>.txt (text)."""
    return indexes.list_files()


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
    deleted = indexes.delete_all_files(session, principal.actor)
    return {"deleted": deleted}


@router.delete("/files/{name}", status_code=204)
def delete_file(name: str, principal: Admin, session: WriteSessionDep) -> Response:
    """Delete one news file."""
    indexes.delete_file(session, name, principal.actor)
    return Response(status_code=204)


# --- Indexes -------------------------------------------------------------------------------


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


@router.get("/indices", response_model=list[IndexOut])
def list_indexes(principal: Viewer) -> Any:
    """Every index; `active` marks the one questions go to."""
    return indexes.list_indexes()


@router.post("/indices/{name}/activate", response_model=list[IndexOut])
def activate_index(name: str, principal: Operator, session: WriteSessionDep) -> Any:
    """Make an index the active one."""
    indexes.activate(session, name, principal.actor)
    return indexes.list_indexes()


@router.delete("/indices/{name}", status_code=204)
def delete_index(name: str, principal: Admin, session: WriteSessionDep) -> Response:
    """Delete an index (deleting the active one leaves none active)."""
    indexes.delete(session, name, principal.actor)
    return Response(status_code=204)


@router.get("/faiss/status", response_model=StatusOut)
def faiss_status(principal: Viewer, session: SessionDep) -> Any:
    """The active index: loaded, vectors, models, last build, backup readiness."""
    return indexes.status(session)


@router.get(
    "/faiss/export",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/zip": {}}},
        404: {"description": "No index is active and none was named, or no such index"},
    },
)
def export_index(principal: Viewer, name: IndexName = None) -> Response:
    """A ZIP backup of the active (or named) index with a checksummed manifest."""
    exported = indexes.export_backup(name)
    return StreamingResponse(
        iter(exported),
        media_type="application/zip",
        headers={
            "Content-Disposition": content_disposition(exported.filename),
            "Content-Length": str(exported.size),
        },
    )


@router.post(
    "/faiss/import",
    response_model=ImportOut,
    responses={
        413: {"description": "Larger than 250 MB"},
        422: {"description": "Not a valid index backup (the message says why)"},
    },
)
def import_index(
    principal: Admin,
    file: Annotated[UploadFile, File(description="A ZIP made by /api/news/faiss/export")],
    name: Annotated[str | None, Form(max_length=63)] = None,
    activate: Annotated[bool, Form()] = False,
) -> Any:
    """Restore an index from a backup; the current indexes stay untouched on any refusal."""
    with session_scope() as session:
        manifest = indexes.import_backup(
            session, file.file, name or None, activate, principal.actor
        )
    listed = {i["name"]: i for i in indexes.list_indexes()}
    return {
        "name": manifest.name,
        "vectors": manifest.vectors,
        "documents": manifest.documents,
        "embedding_model": manifest.model,
        "dimension": manifest.dimension,
        "active": bool(listed.get(manifest.name, {}).get("active")),
    }


# --- Retrieval and settings ----------------------------------------------------------------


@router.post(
    "/test-faiss",
    response_model=TestOut,
    responses={
        409: {"description": "No index is active yet, or the AI is not configured"},
        502: {"description": "The AI or the embeddings provider could not answer"},
    },
)
def test_faiss(payload: TestIn, principal: Operator) -> Any:
    """Ask the active index: an answer from the AI tab's model, or the passages without one."""
    result = retrieval.answer(
        payload.query,
        mode=payload.mode,
        top_k=payload.top_k,
        min_score=payload.min_score,
    )
    return asdict(result)


@router.get("/settings", response_model=SettingsOut)
def get_settings(principal: Viewer, session: SessionDep) -> Any:
    """Retrieval settings and the daily schedule."""
    return service.settings_view(session)


@router.put("/settings", response_model=SettingsOut)
def put_settings(payload: SettingsIn, principal: Operator, session: WriteSessionDep) -> Any:
    """Change the retrieval settings and/or the schedule."""
    retrieval_in = payload.retrieval
    schedule_in = payload.schedule
    service.save_settings(
        session,
        principal.actor,
        retrieval=service.Retrieval(**retrieval_in.model_dump()) if retrieval_in else None,
        schedule=service.Schedule(**schedule_in.model_dump()) if schedule_in else None,
    )
    return service.settings_view(session)
