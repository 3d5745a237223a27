"""Build an index from documents: split, embed what changed, write, swap in whole."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from relaydesk.ai.providers import LLMError
from relaydesk.core import clock, ondisk
from relaydesk.core.errors import Invalid
from relaydesk.core.i18n import N_
from relaydesk.knowledge import chunking, disk
from relaydesk.knowledge.embeddings import Embedder, Vectors, describe_embedder
from relaydesk.knowledge.manifest import (
    CHUNKS_FILE,
    INDEX_FILE,
    MANIFEST_FILE,
    FileEntry,
    Manifest,
    sha256,
)
from relaydesk.knowledge.store import (
    IndexDamaged,
    LoadedIndex,
    faiss_module,
    files_version,
    forget_loaded,
    index_path,
    load,
)

log = logging.getLogger(__name__)

EMBED_BATCH = 32  # texts per embedder call: the unit of build progress (and of a stop)

ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Document:
    """A text to index and where it came from."""

    url: str
    title: str
    category: str
    text: str
    published: str | None = None  # ISO 8601 date or time, as the source gave it


@dataclass(frozen=True)
class BuildResult:
    """What a build did."""

    name: str
    vectors: int
    documents: int
    embedded: int  # chunks sent to the embedder
    reused: int  # chunks whose stored vector was kept
    skipped_documents: int  # duplicates of an earlier URL, or without text
    seconds: float


@dataclass(frozen=True)
class _Planned:
    record: dict[str, Any]  # the chunks.json entry
    embed_text: str


def build(
    root: Path,
    name: str,
    documents: Iterable[Document],
    embedder: Embedder,
    progress: ProgressFn | None = None,
    *,
    chunk_size: int = chunking.DEFAULT_SIZE,
    chunk_overlap: int = chunking.DEFAULT_OVERLAP,
) -> BuildResult:
    """(Re)build the index `name` from `documents`, embedding only new or changed chunks.

    Chunks whose text is unchanged keep their stored vector when the index was built by
    the same model; chunks of documents no longer given are dropped. `progress(done,
    total, message)` is called as chunks are embedded; an exception it raises aborts the
    build. The previous index stays as it was until the new one has been written whole.
    """
    index_path(root, name)
    started = time.monotonic()
    report = progress or _no_progress
    root.mkdir(parents=True, exist_ok=True)
    docs, skipped = _unique(documents)
    if not docs:
        raise Invalid(N_("There is nothing to index: no document has any text"), params={})
    report(0, 0, N_("splitting documents into chunks"))
    planned = _plan(docs, chunk_size, chunk_overlap)
    previous = _previous(root, name, embedder)
    dimension = embedder.dimension
    vectors = np.zeros((len(planned), dimension), dtype=np.float32)
    old_rows = {c.chunk_hash: i for i, c in enumerate(previous.chunks)} if previous else {}
    reuse = [
        (i, old_rows[p.record["chunk_hash"]])
        for i, p in enumerate(planned)
        if p.record["chunk_hash"] in old_rows
    ]
    if reuse and previous is not None:
        stored = previous.index.reconstruct_n(0, previous.vectors)
        new_rows, old = zip(*reuse, strict=True)
        vectors[list(new_rows)] = stored[list(old)]
    reused = {new for new, _ in reuse}
    pending = [i for i in range(len(planned)) if i not in reused]
    total = len(pending)
    report(
        0,
        total,
        N_("%(reused)s chunks unchanged, %(total)s to embed")
        % {"reused": len(reuse), "total": total},
    )
    for start in range(0, total, EMBED_BATCH):
        rows = pending[start : start + EMBED_BATCH]
        vectors[rows] = _embed(embedder, [planned[i].embed_text for i in rows], dimension)
        done = start + len(rows)
        report(
            done,
            total,
            N_("embedded %(done)s of %(total)s chunks") % {"done": done, "total": total},
        )
    report(total, total, N_("writing the index"))
    now = _now()
    manifest = Manifest(
        name=name,
        provider=embedder.provider,
        model=embedder.model,
        dimension=dimension,
        vectors=len(planned),
        documents=len(docs),
        created_at=previous.manifest.created_at if previous else now,
        updated_at=now,
        files={},
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
    )
    with disk.work_dir(root, "build") as staged:
        write_directory(staged, manifest, vectors, [p.record for p in planned])
        disk.swap_in(root, name, staged)
    forget_loaded(root / name)  # free the old version's memory now
    report(total, total, N_("done"))
    return BuildResult(
        name=name,
        vectors=len(planned),
        documents=len(docs),
        embedded=total,
        reused=len(reuse),
        skipped_documents=skipped,
        seconds=time.monotonic() - started,
    )


def _no_progress(done: int, total: int, message: str) -> None:
    pass


def _unique(documents: Iterable[Document]) -> tuple[list[Document], int]:
    """Documents with text, the first of each URL; and how many were left out."""
    seen: set[str] = set()
    kept: list[Document] = []
    skipped = 0
    for doc in documents:
        if doc.url in seen or not doc.text.strip():
            skipped += 1
            continue
        seen.add(doc.url)
        kept.append(doc)
    return kept, skipped


def _plan(docs: list[Document], size: int, overlap: int) -> list[_Planned]:
    out = []
    # Rows of one category stay together so a category filter scans a single range.
    for doc in sorted(docs, key=lambda d: d.category):
        doc_hash = sha256(doc.text.encode())
        url_hash = sha256(doc.url.encode())[:16]
        for n, passage in enumerate(chunking.split(doc.text, size=size, overlap=overlap)):
            # The title travels with every passage: "Prices" alone says less than
            # "Bakery raises bread prices — Prices…".
            embed_text = f"{doc.title.strip()}\n\n{passage}" if doc.title.strip() else passage
            record = {
                "id": f"{url_hash}-{n}",
                "url": doc.url,
                "title": doc.title,
                "category": doc.category,
                "published": doc.published,
                "text": passage,
                "doc_hash": doc_hash,
                "chunk_hash": sha256(embed_text.encode()),
            }
            out.append(_Planned(record, embed_text))
    return out


def _previous(root: Path, name: str, embedder: Embedder) -> LoadedIndex | None:
    """The current index of that name if its vectors can be reused by `embedder`."""
    if files_version((root / name).absolute()) is None:
        return None
    try:
        previous = load(root, name)
    except IndexDamaged as exc:
        log.warning("rebuilding '%s' from scratch: %s", name, exc.message)
        return None
    m = previous.manifest
    if (m.provider, m.model, m.dimension) != (
        embedder.provider,
        embedder.model,
        embedder.dimension,
    ):
        return None
    return previous


def _embed(embedder: Embedder, texts: list[str], dimension: int) -> Vectors:
    vectors = embedder.embed(texts)
    if vectors.shape != (len(texts), dimension):
        raise LLMError(
            N_(
                "%(model)s returned %(vectors)s vectors of %(dimension)s dimensions "
                "for %(texts)s texts"
            ),
            params={
                "model": describe_embedder(embedder),
                "vectors": vectors.shape[0],
                "dimension": vectors.shape[1] if vectors.ndim == 2 else "?",
                "texts": len(texts),
            },
            transient=False,
        )
    return vectors


def write_directory(
    path: Path, manifest: Manifest, vectors: Vectors, records: list[dict[str, Any]]
) -> Manifest:
    """Write an index's three files into the empty directory `path`; the final manifest."""
    faiss = faiss_module()
    index = faiss.IndexFlatIP(manifest.dimension)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    index_bytes = faiss.serialize_index(index).tobytes()
    chunk_bytes = json.dumps(
        {"chunks": records}, ensure_ascii=False, separators=(",", ":")
    ).encode()
    final = replace(
        manifest,
        files={
            INDEX_FILE: FileEntry(len(index_bytes), sha256(index_bytes)),
            CHUNKS_FILE: FileEntry(len(chunk_bytes), sha256(chunk_bytes)),
        },
    )
    ondisk.write_new(path / INDEX_FILE, index_bytes)
    ondisk.write_new(path / CHUNKS_FILE, chunk_bytes)
    ondisk.write_new(path / MANIFEST_FILE, final.to_json())
    return final


def _now() -> str:
    return clock.now().isoformat(timespec="seconds")
