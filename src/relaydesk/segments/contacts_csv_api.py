"""REST routes of contacts as CSV: GET /api/contacts.csv, POST /api/contacts/import[/preview]."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Response, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from relaydesk.deps import Operator, SessionDep, Viewer, WriteSessionDep
from relaydesk.segments import contacts_csv

router = APIRouter(tags=["contacts"])

Upload = Annotated[
    UploadFile,
    File(description="CSV with a header row: number, name, labels (a|b), channel, attribute keys"),
]
_REFUSED: dict[int | str, dict[str, Any]] = {
    413: {"description": "Over 2 MB or over 10,000 rows"},
    422: {"description": "Not a CSV file, no number column, or not the file previewed"},
}


class InvalidRow(BaseModel):
    """A row that cannot be imported, and why."""

    line: int
    number: str
    reason: str


class ImportPreview(BaseModel):
    """What importing a file does: valid rows (new and existing numbers), duplicates, invalid."""

    rows: int
    valid: int
    new: int
    existing: int
    duplicates: int
    invalid: int
    invalid_rows: list[InvalidRow]
    ignored_columns: list[str]
    labels_waiting: int
    fingerprint: str


class ImportResult(ImportPreview):
    """What an import stored."""

    profiles_changed: int
    labelled: int


def _read(file: UploadFile) -> bytes:
    return file.file.read(contacts_csv.MAX_BYTES + 1)


@router.get(
    "/api/contacts.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "UTF-8 with BOM"}},
)
def contacts_csv_file(principal: Viewer) -> Response:
    """Every contact as CSV (Excel-ready): number, channels, name, labels, each attribute,
    opted out per channel, last inbound message; streamed."""
    return StreamingResponse(
        contacts_csv.export_csv(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="contacts.csv"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/api/contacts/import/preview", response_model=ImportPreview, responses=_REFUSED)
def import_preview(file: Upload, principal: Operator, session: SessionDep) -> Any:
    """Check a CSV file and count what it would do; nothing is stored."""
    return contacts_csv.preview(session, _read(file))


@router.post("/api/contacts/import", response_model=ImportResult, responses=_REFUSED)
def import_contacts(
    file: Upload,
    principal: Operator,
    session: WriteSessionDep,
    previewed: Annotated[str | None, Form(max_length=64)] = None,
) -> Any:
    """Import a CSV file's valid rows (audited). `previewed`, the preview's fingerprint,
    makes sure the file stored is the one previewed."""
    return contacts_csv.apply(session, _read(file), principal, previewed)
