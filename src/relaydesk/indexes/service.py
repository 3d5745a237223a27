"""The knowledge indexes as the API and panel manage them, audited; where they live;
how many passages a question gets; and the embedder configured for them.

The knowledge package does the work on disk; this adds who did what (the audit log),
the status card's view of the active index, and the models in effect. The news domain
builds indexes from its articles and the digests and automation domains ask them; this
package imports none of them (the AI tab's model comes from ai.settings).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session

from relaydesk.ai.credentials import openai_credentials
from relaydesk.ai.providers import LLMNotConfigured, describe
from relaydesk.ai.settings import llm_config, read_ai
from relaydesk.core import settings_store
from relaydesk.core.audit import record
from relaydesk.core.config import get_settings
from relaydesk.core.db import session_scope
from relaydesk.core.errors import Invalid, NotConfigured
from relaydesk.core.i18n import N_
from relaydesk.knowledge import backup, store
from relaydesk.knowledge.embeddings import Embedder, get_embedder
from relaydesk.knowledge.manifest import Manifest

# The settings row keeps the name it was stored under when the news module held it.
RETRIEVAL_KEY = "news.retrieval"
MAX_TOP_K = 50
MAX_IMPORT_BYTES = backup.MAX_IMPORT_BYTES  # read at each import (tests lower it)


def index_root() -> Path:
    """Where the named vector indexes are kept."""
    return get_settings().data_dir / "indexes"


@dataclass(frozen=True)
class Retrieval:
    """How many passages a question gets and how similar they must be (cosine, 0..1)."""

    top_k: int = 5
    min_score: float = 0.25

    def __post_init__(self) -> None:
        if not isinstance(self.top_k, int) or not 1 <= self.top_k <= MAX_TOP_K:
            raise Invalid(
                N_("top_k must be a whole number from 1 to %(max)s"),
                params={"max": MAX_TOP_K},
                field="top_k",
            )
        if not 0 <= float(self.min_score) <= 1:
            raise Invalid(N_("min_score must be between 0 and 1"), params={}, field="min_score")


def read_retrieval(session: Session) -> Retrieval:
    """The stored retrieval settings (defaults where nothing usable is stored)."""
    value = settings_store.read(session, [RETRIEVAL_KEY]).values.get(RETRIEVAL_KEY)
    data = dict(value) if isinstance(value, dict) else {}
    try:
        return Retrieval(int(data.get("top_k", 5)), float(data.get("min_score", 0.25)))
    except (Invalid, TypeError, ValueError):
        return Retrieval()


def embedder() -> Embedder:
    """The configured embedder, with the AI tab's OpenAI key and server when set there."""
    with session_scope(write=False) as session:
        credentials = openai_credentials(session)
    try:
        return get_embedder(
            get_settings(), api_key=credentials.api_key, base_url=credentials.base_url
        )
    except LLMNotConfigured as exc:
        raise exc.as_relaydesk(NotConfigured) from None


def list_indexes() -> list[dict[str, Any]]:
    """Every index with its size, model and whether it is active or damaged."""
    return [asdict(i) for i in store.list_indexes(index_root())]


def activate(session: Session, name: str, actor: str) -> None:
    """Make `name` the index questions go to."""
    store.activate(index_root(), name)
    record(session, actor, "news.index.activate", f"index:{name}", None)


def delete(session: Session, name: str, actor: str) -> None:
    """Remove an index (deleting the active one leaves none active)."""
    store.delete(index_root(), name)
    record(session, actor, "news.index.delete", f"index:{name}", None)


def import_backup(
    session: Session, upload: IO[bytes], name: str | None, activate: bool, actor: str
) -> Manifest:
    """Restore an index from an uploaded ZIP; BackupRefused says why one is not taken."""
    root = index_root()
    activate = activate or store.active_name(root) is None
    manifest = backup.import_zip(
        root,
        upload,
        name,
        max_bytes=MAX_IMPORT_BYTES,
        embedder=embedder(),
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
    root = index_root()
    chosen = name or store.active_name(root)
    if chosen is None:
        raise store.IndexNotFound(
            N_("No index is active and none was named: nothing to export"), params={}
        )
    return backup.export_zip(root, chosen)


def status(session: Session) -> dict[str, Any]:
    """The status card: the active index, its models and size, and whether it can be backed up."""
    root = index_root()
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
            configured = embedder()
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
