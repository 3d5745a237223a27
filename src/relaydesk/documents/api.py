"""/api/knowledge/documents: the business's own files in the knowledge base."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import Response

from relaydesk.core.errors import Invalid, TooLarge
from relaydesk.core.i18n import N_
from relaydesk.deps import Admin, Id, Operator, SessionDep, Viewer, WriteSessionDep
from relaydesk.documents import service
from relaydesk.documents.extract import MAX_BYTES
from relaydesk.documents.schemas import DocumentOut, DocumentSaved

router = APIRouter(prefix="/api/knowledge/documents", tags=["knowledge"])

_REFUSALS: dict[int | str, dict[str, Any]] = {
    413: {"description": "The file is larger than 20 MB"},
    422: {"description": "Not a supported type, macros, a password, damaged, or no text"},
}
Upload = Annotated[
    UploadFile,
    File(description="PDF, DOCX, ODT, XLSX, CSV, TXT, Markdown or HTML, at most 20 MB"),
]


def read_upload(upload: UploadFile) -> tuple[str, bytes]:
    """The uploaded file's name and bytes, refusing more than MAX_BYTES before reading on."""
    data = upload.file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise TooLarge(
            N_("The file is larger than %(size)s MB"), params={"size": MAX_BYTES // (1024 * 1024)}
        )
    if not upload.filename:
        raise Invalid(
            N_("The file needs a name (its type is checked against it)"), params={}, field="file"
        )
    return upload.filename, data


@router.get("", response_model=list[DocumentOut])
def list_documents(principal: Viewer, session: SessionDep) -> list[DocumentOut]:
    """Every document, by category."""
    return [DocumentOut.model_validate(row) for row in service.list_documents(session)]


@router.post("", response_model=DocumentSaved, status_code=201, responses=_REFUSALS)
def add_document(
    principal: Operator,
    session: WriteSessionDep,
    file: Upload,
    category: Annotated[str, Form(min_length=1, max_length=63)],
) -> DocumentSaved:
    """Add a file to a category; its text is extracted now and the active index updated."""
    name, data = read_upload(file)
    row, job = service.add(session, category, name, data, principal.actor)
    return DocumentSaved(document=DocumentOut.model_validate(row), job_id=job)


@router.get("/{document_id}", response_model=DocumentOut, responses={404: {}})
def get_document(document_id: Id, principal: Viewer, session: SessionDep) -> DocumentOut:
    """One document."""
    return DocumentOut.model_validate(service.get(session, document_id))


@router.put("/{document_id}", response_model=DocumentSaved, responses={404: {}, **_REFUSALS})
def replace_document(
    document_id: Id, principal: Operator, session: WriteSessionDep, file: Upload
) -> DocumentSaved:
    """Put a new version of the file in place; the index keeps its unchanged passages."""
    name, data = read_upload(file)
    row, job = service.replace(session, document_id, name, data, principal.actor)
    return DocumentSaved(document=DocumentOut.model_validate(row), job_id=job)


@router.delete("/{document_id}", status_code=204, responses={404: {}})
def delete_document(document_id: Id, principal: Admin, session: WriteSessionDep) -> Response:
    """Remove a document; the index update queued with it drops its passages."""
    service.delete(session, document_id, principal.actor)
    return Response(status_code=204)
