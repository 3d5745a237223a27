"""The news files and knowledge indexes as the API and panel manage them, audited.

The knowledge package does the work on disk; this adds who did what (the audit log),
the status card's view of the active index, and the chat model in effect.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import IO, Any

from sqlalchemy.orm import Session

from relaydesk.ai.providers import describe
from relaydesk.automation.settings import llm_config, read_ai
from relaydesk.core.audit import record
from relaydesk.knowledge import backup, store
from relaydesk.knowledge.manifest import Manifest
from relaydesk.news import files, retrieval, service

MAX_IMPORT_BYTES = backup.MAX_IMPORT_BYTES  # read at each import (tests lower it)


def list_files() -> list[dict[str, Any]]:
    """The stored category files (name, category, kind, size in bytes, modified)."""
    return [asdict(f) for f in files.list_files(service.news_dir())]


def file_groups() -> list[dict[str, Any]]:
    """The files by category, each with its .json and .txt entry (either may be missing)."""
    groups: dict[str, dict[str, Any]] = {}
    for f in files.list_files(service.news_dir()):
        group = groups.setdefault(f.category, {"category": f.category, "json": None, "txt": None})
        group[f.kind] = asdict(f)
    return list(groups.values())


def delete_file(session: Session, name: str, actor: str) -> None:
    """Delete one news file (NotFound / Invalid for anything that is not one)."""
    files.delete_file(service.news_dir(), name)
    record(session, actor, "news.file.delete", f"news_file:{name}", None)


def delete_all_files(session: Session, actor: str) -> list[str]:
    """Delete every news file; the names deleted."""
    deleted = files.delete_all(service.news_dir())
    record(session, actor, "news.file.delete_all", "news_files", {"deleted": deleted})
    return deleted


def list_indexes() -> list[dict[str, Any]]:
    """Every index with its size, model and whether it is active or damaged."""
    return [asdict(i) for i in store.list_indexes(service.index_root())]


def activate(session: Session, name: str, actor: str) -> None:
    """Make `name` the index questions go to."""
    store.activate(service.index_root(), name)
    record(session, actor, "news.index.activate", f"index:{name}", None)


def delete(session: Session, name: str, actor: str) -> None:
    """Remove an index (deleting the active one leaves none active)."""
    store.delete(service.index_root(), name)
    record(session, actor, "news.index.delete", f"index:{name}", None)


def import_backup(
    session: Session, upload: IO[bytes], name: str | None, activate: bool, actor: str
) -> Manifest:
    """Restore an index from an uploaded ZIP; BackupRefused says why one is not taken."""
    root = service.index_root()
    activate = activate or store.active_name(root) is None
    manifest = backup.import_zip(
        root,
        upload,
        name,
        max_bytes=MAX_IMPORT_BYTES,
        embedder=retrieval.embedder(),
        activate=activate,
    )
    record(
        session,
        actor,
        "news.index.import",
        f"index:{manifest.name}",
        {"vectors": manifest.vectors, "model": manifest.model, "activated": activate},
    )
    return manifest


def export_backup(name: str | None) -> backup.ExportedZip:
    """A ZIP of the named or the active index."""
    root = service.index_root()
    chosen = name or store.active_name(root)
    if chosen is None:
        raise store.IndexNotFound("No index is active and none was named: nothing to export")
    return backup.export_zip(root, chosen)


def status(session: Session) -> dict[str, Any]:
    """The status card: the active index, its models and size, and whether it can be backed up."""
    root = service.index_root()
    problem = None
    try:
        # Loaded here (then kept in memory) so "loaded" means ready to answer, not merely
        # "someone asked already"; a damaged index shows its problem on the card.
        store.load_active(root)
    except store.IndexDamaged as exc:
        problem = exc.message
    except store.IndexNotFound:
        pass  # deleted meanwhile: the status below says no index is active
    current = store.status(root)
    config, _ = read_ai(session)
    embedding = current.embedding_model
    if embedding is None:
        try:
            configured = retrieval.embedder()
            embedding = configured.model
        except Exception:  # only a label for the card: a broken setup shows in build/test
            embedding = None
    return {
        "loaded": current.loaded,
        "active_index": current.active,
        "vectors": current.vectors,
        "embedding_provider": current.embedding_provider,
        "embedding_model": embedding,
        "chat_model": describe(llm_config(config)),
        "last_build": current.last_build,
        "backup_ready": current.backup_ready,
        "problem": current.problem or problem,
    }
