"""REST routes of the knowledge indexes: list, activate, delete, back up, restore, ask.

They keep the /api/news prefix (and the "news" tag) under which they were published;
building an index from the news files is the news module's route (/api/news/indices/build).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response, StreamingResponse

from relaydesk.core.db import session_scope
from relaydesk.core.names import content_disposition
from relaydesk.deps import Admin, Operator, SessionDep, Viewer, WriteSessionDep
from relaydesk.indexes import retrieval
from relaydesk.indexes import service as indexes
from relaydesk.indexes.schemas import ImportOut, IndexOut, StatusOut, TestIn, TestOut

router = APIRouter(prefix="/api/news", tags=["news"])

IndexName = Annotated[str | None, Query(max_length=63)]


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


# --- Retrieval -----------------------------------------------------------------------------


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
