"""The News tab's documents section: list, upload, new version, delete."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from relaydesk.auth.sessions import SignedIn
from relaydesk.core.db import session_scope
from relaydesk.deps import Id
from relaydesk.documents import service
from relaydesk.documents.api import read_upload
from relaydesk.documents.models import KnowledgeDocument
from relaydesk.documents.schemas import DocumentOut
from relaydesk.indexes.views import changed
from relaydesk.jobs import service as job_service
from relaydesk.web.deps import PanelAdmin, PanelOperator, PanelViewer
from relaydesk.web.templating import render

router = APIRouter(include_in_schema=False)
TEMPLATE = "news/_documents.html"


def _job_view(session: Session, job_id: int | None) -> dict[str, Any] | None:
    """The queued index update as the job fragment shows it (None: none was queued)."""
    if job_id is None:
        return None
    session.flush()
    return job_service.view(job_service.get(session, job_id))


def documents_context() -> dict[str, Any]:
    """The section's list of documents."""
    with session_scope(write=False) as session:
        rows = service.list_documents(session)
        return {"documents": [DocumentOut.model_validate(row) for row in rows]}


@router.get("/news/documents", response_class=HTMLResponse)
def documents_section(request: Request, user: PanelViewer) -> Response:
    """The documents and, for operators, the upload form."""
    return render(request, TEMPLATE, documents_context(), user=user)


@router.post("/news/documents", response_class=HTMLResponse)
def upload_document(
    request: Request,
    user: PanelOperator,
    file: Annotated[UploadFile, File()],
    category: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Add a document; the section comes back with it and the index update is queued."""
    name, data = read_upload(file)
    return _changed(request, user, lambda s: service.add(s, category, name, data, user.actor))


@router.post("/news/documents/{document_id}", response_class=HTMLResponse)
def replace_document(
    request: Request, document_id: Id, user: PanelOperator, file: Annotated[UploadFile, File()]
) -> Response:
    """Put a new version of a document in place."""
    name, data = read_upload(file)
    return _changed(
        request, user, lambda s: service.replace(s, document_id, name, data, user.actor)
    )


@router.delete("/news/documents/{document_id}", response_class=HTMLResponse)
def delete_document(request: Request, document_id: Id, user: PanelAdmin) -> Response:
    """Delete a document (asked to confirm in the browser first)."""
    return _changed(request, user, lambda s: (None, service.delete(s, document_id, user.actor)))


def _changed(
    request: Request,
    user: SignedIn,
    change: Callable[[Session], tuple[KnowledgeDocument | None, int | None]],
) -> Response:
    """Make a change, then answer with the section, a notice and the queued update's progress."""
    with session_scope() as session:
        row, job_id = change(session)
        job = _job_view(session, job_id)
        saved = DocumentOut.model_validate(row) if row is not None else None
    context = {**documents_context(), "added": saved, "removed": saved is None, "job": job}
    return render(request, TEMPLATE, context, headers=changed(), user=user)
