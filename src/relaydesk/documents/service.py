"""Add, replace, list and delete documents; hand their parts to index builds.

A document's row is the catalogue; its extracted parts (`parts.json`) and the uploaded
bytes sit in DATA_DIR/documents/<id>/, written whole before the row is committed. An
upload queues an update of the active index (or 'news'), as fetching news does, so a
question asked when that job ends reads the document.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path, PurePosixPath

from sqlalchemy import select
from sqlalchemy.orm import Session

from relaydesk.core.audit import record
from relaydesk.core.config import get_settings
from relaydesk.core.db import utcnow
from relaydesk.core.errors import Conflict, NotFound
from relaydesk.core.i18n import N_
from relaydesk.core.names import category_slug, clean_filename
from relaydesk.core.ondisk import write_atomically
from relaydesk.documents.extract import Extracted, Part, extract
from relaydesk.documents.models import KnowledgeDocument
from relaydesk.indexes.service import index_root
from relaydesk.jobs import service as jobs
from relaydesk.knowledge import indexing, store

PARTS_FILE = "parts.json"
# The job that updates an index from the news files and the documents (news.tasks.BUILD;
# named here because the news domain stands above this one).
BUILD_JOB = "news.build_index"
DEFAULT_INDEX = "news"


def documents_dir() -> Path:
    """Where the documents' bytes and extracted parts are kept."""
    return get_settings().data_dir / "documents"


def list_documents(session: Session) -> list[KnowledgeDocument]:
    """Every document, by category, newest first within it."""
    return list(
        session.scalars(
            select(KnowledgeDocument).order_by(
                KnowledgeDocument.category, KnowledgeDocument.id.desc()
            )
        )
    )


def get(session: Session, document_id: int) -> KnowledgeDocument:
    """One document; NotFound when there is none."""
    row = session.get(KnowledgeDocument, document_id)
    if row is None:
        raise NotFound(N_("There is no document %(id)s"), params={"id": document_id})
    return row


def add(
    session: Session, category: str, filename: str, data: bytes, actor: str
) -> tuple[KnowledgeDocument, int | None]:
    """Extract and store an uploaded file in a category (Invalid/TooLarge with a reason).

    Returns the row and the index update queued with it (`queue_index_update`).
    """
    slug = category_slug(category)
    name = clean_filename(filename)
    found = extract(name, data)
    row = KnowledgeDocument(category=slug, filename=name, created_by=actor)
    _fill(row, found, data)
    session.add(row)
    session.flush()
    _write(row.id, name, found.parts, data)
    record(session, actor, "knowledge.document.add", f"document:{row.id}", _details(row))
    return row, queue_index_update(session, actor)


def replace(
    session: Session, document_id: int, filename: str, data: bytes, actor: str
) -> tuple[KnowledgeDocument, int | None]:
    """Put a new version of a document in its place (same id and category); the row and
    the index update queued with it."""
    row = get(session, document_id)
    name = clean_filename(filename)
    found = extract(name, data)
    _fill(row, found, data)
    row.filename = name
    row.updated_at = utcnow()
    session.flush()
    _write(row.id, name, found.parts, data)
    record(session, actor, "knowledge.document.replace", f"document:{row.id}", _details(row))
    return row, queue_index_update(session, actor)


def delete(session: Session, document_id: int, actor: str) -> int | None:
    """Remove a document; the index update queued with it (returned) drops its passages."""
    row = get(session, document_id)
    details = _details(row)
    session.delete(row)
    session.flush()
    shutil.rmtree(documents_dir() / str(document_id), ignore_errors=True)
    record(session, actor, "knowledge.document.delete", f"document:{document_id}", details)
    return queue_index_update(session, actor)


def queue_index_update(session: Session, actor: str) -> int | None:
    """Queue an update of the active index (or 'news'); None while a build already runs."""
    name = store.active_name(index_root()) or DEFAULT_INDEX
    try:
        job = jobs.start(session, BUILD_JOB, {"name": name, "categories": None}, actor)
    except Conflict:
        return None
    return job.id


def index_documents(session: Session, categories: list[str] | None) -> list[indexing.Document]:
    """The documents' parts as index documents (of all or the named categories).

    Each part is cited as `document:<id>#<page or row>` with the file name and the part
    as its title, so a grounded answer says which file and where.
    """
    query = select(KnowledgeDocument).order_by(KnowledgeDocument.id)
    if categories is not None:
        query = query.where(KnowledgeDocument.category.in_(categories))
    found: list[indexing.Document] = []
    for row in session.scalars(query):
        for part in read_parts(row.id):
            anchor = f"#{part.ref.replace(' ', '-')}" if part.ref else ""
            title = f"{row.filename} ({part.ref})" if part.ref else row.filename
            published = row.updated_at.date().isoformat()
            url = f"document:{row.id}{anchor}"
            found.append(indexing.Document(url, title, row.category, part.text, published))
    return found


def read_parts(document_id: int) -> list[Part]:
    """A document's extracted parts as stored ([] when its files are gone)."""
    path = documents_dir() / str(document_id) / PARTS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [Part(item.get("ref"), str(item.get("text") or "")) for item in data]


def _fill(row: KnowledgeDocument, found: Extracted, data: bytes) -> None:
    row.kind = found.kind
    row.size = len(data)
    row.sha256 = hashlib.sha256(data).hexdigest()
    row.parts = len(found.parts)
    row.characters = found.characters


def _write(document_id: int, filename: str, parts: list[Part], data: bytes) -> None:
    folder = documents_dir() / str(document_id)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = PurePosixPath(filename).suffix.lower()[:10]
    for old in folder.glob("original*"):
        old.unlink()
    write_atomically(folder / f"original{suffix}", data)
    listed = [{"ref": p.ref, "text": p.text} for p in parts]
    write_atomically(folder / PARTS_FILE, json.dumps(listed, ensure_ascii=False).encode())


def _details(row: KnowledgeDocument) -> dict[str, object]:
    return {"category": row.category, "filename": row.filename, "kind": row.kind}
