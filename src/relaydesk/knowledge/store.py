"""Named vector indexes in a directory, one of them active; build, load and search them.

Layout under `root` (the caller passes DATA_DIR/indexes):
  <name>/          one index (see manifest.py for its three files)
  .active          the active index's name, replaced atomically
  .lock            flock'ed while an index directory is swapped, deleted or activated
  .build-*/ .import-*/ .old-*/ .trash-*/   short-lived work directories
An index is never changed in place: a build or an import writes a new directory and
swaps it in (disk.py), so a reader sees the old index or the new one, whole.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from relaydesk.ai.providers import LLMError
from relaydesk.core import ondisk
from relaydesk.core.errors import Conflict, Invalid, NotFound, RelaydeskError
from relaydesk.knowledge import chunking, disk
from relaydesk.knowledge.embeddings import Embedder, Vectors, describe_embedder
from relaydesk.knowledge.manifest import (
    CHUNKS_FILE,
    INDEX_FILE,
    MANIFEST_FILE,
    MAX_MANIFEST_BYTES,
    FileEntry,
    FormatError,
    Manifest,
    check_faiss_header,
    check_file,
    parse_chunks,
    sha256,
    valid_name,
)

log = logging.getLogger(__name__)

# One query against a flat index is a memory-bound scan: OpenMP threads add spin-up and
# contention (p50 5.7 ms with one thread, 14.6 ms with two on a 2-core machine) while
# concurrent requests already run on their own threads.
faiss.omp_set_num_threads(1)

ACTIVE_FILE = ".active"
EMBED_BATCH = 256  # texts per embedder call: the unit of build progress
MAX_CACHED = 4  # loaded indexes kept in memory per process

ProgressFn = Callable[[int, int, str], None]


class IndexNotFound(NotFound):
    """No index of that name."""


class IncompatibleEmbedder(Conflict):
    """The index was built by another embedding model; its vectors mean nothing to this one."""

    code = "embedder_mismatch"


class IndexDamaged(RelaydeskError):
    """An index's files are missing, changed or unreadable."""

    status_code = 500
    code = "index_damaged"


@dataclass(frozen=True)
class Document:
    """A text to index and where it came from."""

    url: str
    title: str
    category: str
    text: str
    published: str | None = None  # ISO 8601 date or time, as the source gave it


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """One indexed passage: the text behind one vector."""

    id: str
    url: str
    title: str
    category: str
    text: str
    doc_hash: str  # SHA-256 of the whole document's text
    chunk_hash: str  # SHA-256 of what was embedded (title + passage)
    published: str | None = None


@dataclass(frozen=True)
class Hit:
    """A search result: the passage and its cosine similarity to the query (-1 … 1)."""

    score: float
    chunk: StoredChunk


@dataclass(frozen=True)
class LoadedIndex:
    """An index in memory, ready to search (shared between threads; read-only)."""

    name: str
    path: Path
    manifest: Manifest
    index: Any  # faiss.IndexFlatIP
    chunks: tuple[StoredChunk, ...]
    _filters: dict[str, Any]  # category -> faiss.SearchParameters selecting its rows

    @property
    def vectors(self) -> int:
        """How many vectors (chunks) the index holds."""
        return int(self.index.ntotal)

    @property
    def categories(self) -> list[str]:
        """The categories of the indexed documents, sorted."""
        return sorted(self._filters)


@dataclass(frozen=True)
class IndexInfo:
    """One entry of the index list."""

    name: str
    active: bool
    vectors: int
    documents: int
    embedding_provider: str | None
    embedding_model: str | None
    dimension: int | None
    created_at: str | None
    updated_at: str | None
    size_bytes: int
    problem: str | None = None  # why the index cannot be used, if it cannot


@dataclass(frozen=True)
class IndexStatus:
    """The active index at a glance (the News tab's status card)."""

    active: str | None
    loaded: bool  # in this process's memory and current
    vectors: int
    embedding_provider: str | None
    embedding_model: str | None
    dimension: int | None
    last_build: str | None
    backup_ready: bool  # the files are all there with the sizes the manifest lists
    problem: str | None = None


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


def check_name(name: str) -> str:
    """`name` if it is a valid index name, else Invalid with the rule."""
    if not isinstance(name, str) or not valid_name(name):
        raise Invalid(
            "An index name is 1 to 63 characters: lower-case letters, digits, '-' and '_', "
            "starting with a letter or digit",
            field="name",
        )
    return name


def index_path(root: Path, name: str) -> Path:
    """The folder of the index `name` under `root`; Invalid for a name that is not one."""
    return ondisk.inside(root, check_name(name))


# --- Listing, activating, deleting -------------------------------------------------------


def list_indexes(root: Path) -> list[IndexInfo]:
    """Every index under `root`, by name; a damaged one is listed with its problem."""
    if not root.is_dir():
        return []
    with disk.root_lock(root):
        disk.clean_work_dirs(root)
    active = active_name(root)
    out = []
    for path in sorted(root.iterdir()):
        if path.is_symlink() or not path.is_dir() or not valid_name(path.name):
            continue
        try:
            out.append(_info(path, path.name == active))
        except FileNotFoundError:
            continue  # deleted while the list was made
    return out


def _info(path: Path, active: bool) -> IndexInfo:
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    try:
        m = read_manifest(path)
    except IndexDamaged as exc:
        return IndexInfo(
            name=path.name,
            active=active,
            vectors=0,
            documents=0,
            embedding_provider=None,
            embedding_model=None,
            dimension=None,
            created_at=None,
            updated_at=None,
            size_bytes=size,
            problem=exc.message,
        )
    return IndexInfo(
        name=path.name,
        active=active,
        vectors=m.vectors,
        documents=m.documents,
        embedding_provider=m.provider,
        embedding_model=m.model,
        dimension=m.dimension,
        created_at=m.created_at,
        updated_at=m.updated_at,
        size_bytes=size,
    )


def active_name(root: Path) -> str | None:
    """The active index's name, or None when none is active (or it no longer exists)."""
    name = _active_file(root)
    if not name or not valid_name(name):
        return None
    return name if _settled_exists(root / name) else None


def _active_file(root: Path) -> str | None:
    try:
        return (root / ACTIVE_FILE).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def activate(root: Path, name: str) -> None:
    """Make `name` the active index (it must exist and have a readable manifest)."""
    check_name(name)
    with disk.root_lock(root):
        read_manifest(_existing(root, name))
        ondisk.write_atomically(root / ACTIVE_FILE, name.encode())


def delete(root: Path, name: str) -> None:
    """Remove an index; deleting the active one leaves no index active."""
    check_name(name)
    with disk.root_lock(root):
        path = _existing(root, name)
        # Renamed first: a half-deleted index is never visible under its name.
        trash = root / f".trash-{name}-{secrets.token_hex(4)}"
        os.replace(path, trash)
        if _active_file(root) == name:
            (root / ACTIVE_FILE).unlink(missing_ok=True)
    _forget(path)
    shutil.rmtree(trash, ignore_errors=True)


def status(root: Path) -> IndexStatus:
    """The active index's size, model, last build time and whether it can be exported."""
    name = active_name(root)
    empty = IndexStatus(name, False, 0, None, None, None, None, False)
    if name is None:
        return empty
    path = root / name
    try:
        m = read_manifest(path)
    except IndexDamaged as exc:
        return replace(empty, problem=exc.message)
    complete = all(
        (path / file).is_file() and (path / file).stat().st_size == entry.size
        for file, entry in m.files.items()
    )
    return IndexStatus(
        active=name,
        loaded=_cached(path.absolute()) is not None,
        vectors=m.vectors,
        embedding_provider=m.provider,
        embedding_model=m.model,
        dimension=m.dimension,
        last_build=m.updated_at,
        backup_ready=complete,
        problem=None if complete else "the index files do not match their manifest",
    )


def read_manifest(path: Path) -> Manifest:
    """The manifest of the index directory `path`; IndexDamaged when unreadable."""
    try:
        return Manifest.from_json(disk.read_limited(path / MANIFEST_FILE, MAX_MANIFEST_BYTES))
    except FileNotFoundError:
        raise IndexDamaged(f"The index '{path.name}' has no {MANIFEST_FILE}") from None
    except FormatError as exc:
        raise IndexDamaged(f"The index '{path.name}' is damaged: {exc}") from None


# --- Loading -----------------------------------------------------------------------------

_cache: OrderedDict[Path, tuple[tuple[int, int], LoadedIndex]] = OrderedDict()
_cache_lock = threading.Lock()
_load_lock = threading.Lock()  # one load at a time: the same index is never read twice


def load(root: Path, name: str) -> LoadedIndex:
    """The index `name`, from memory while its files have not changed."""
    path = index_path(root, name).absolute()
    cached = _cached(path)
    if cached is not None:
        return cached
    with _load_lock:
        for _ in range(3):
            version = _version(path)
            if version is None and _settled_exists(path):
                version = _version(path)
            if version is None:
                raise IndexNotFound(f"There is no index named '{name}'")
            cached = _cached(path)
            if cached is not None:
                return cached
            try:
                loaded = read_directory(path, name)
            except (FileNotFoundError, FormatError) as exc:
                if _version(path) != version:
                    continue  # a build swapped the directory while it was read: read anew
                raise IndexDamaged(f"The index '{name}' is damaged: {exc}") from None
            with _cache_lock:
                _cache[path] = (version, loaded)
                while len(_cache) > MAX_CACHED:
                    _cache.popitem(last=False)
            return loaded
    raise IndexDamaged(f"The index '{name}' kept changing while it was read; try again")


def load_active(root: Path) -> LoadedIndex | None:
    """The active index, or None when no index is active."""
    name = active_name(root)
    return load(root, name) if name else None


def read_directory(path: Path, name: str) -> LoadedIndex:
    """Read and check every file of an index directory; FormatError says what is wrong."""
    manifest = Manifest.from_json(disk.read_limited(path / MANIFEST_FILE, MAX_MANIFEST_BYTES))
    chunk_bytes = (path / CHUNKS_FILE).read_bytes()
    check_file(manifest, CHUNKS_FILE, chunk_bytes)
    index_bytes = (path / INDEX_FILE).read_bytes()
    check_file(manifest, INDEX_FILE, index_bytes)
    check_faiss_header(index_bytes, manifest)
    records = parse_chunks(chunk_bytes, manifest)
    try:
        index = faiss.deserialize_index(np.frombuffer(index_bytes, dtype=np.uint8))
    except RuntimeError as exc:
        raise FormatError(f"FAISS cannot read {INDEX_FILE}: {exc}") from None
    if index.d != manifest.dimension or index.ntotal != manifest.vectors:
        raise FormatError(f"{INDEX_FILE} does not have the shape the manifest lists")
    chunks = tuple(
        StoredChunk(
            id=r["id"],
            url=r["url"],
            title=r["title"],
            category=r["category"],
            text=r["text"],
            doc_hash=r["doc_hash"],
            chunk_hash=r["chunk_hash"],
            published=r.get("published"),
        )
        for r in records
    )
    return LoadedIndex(name, path, manifest, index, chunks, _category_filters(chunks))


def _category_filters(chunks: tuple[StoredChunk, ...]) -> dict[str, Any]:
    rows: dict[str, list[int]] = {}
    for i, chunk in enumerate(chunks):
        rows.setdefault(chunk.category, []).append(i)
    filters = {}
    for category, ids in rows.items():
        selector: Any
        if ids[-1] - ids[0] + 1 == len(ids):
            # Builds store each category's rows together: a range lets FAISS scan only them.
            selector = faiss.IDSelectorRange(ids[0], ids[-1] + 1, True)
        else:
            selector = faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64))
        # The keyword form keeps a Python reference to the selector (faiss's wrapper does
        # it); its type stubs do not know the keyword.
        filters[category] = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
    return filters


def _cached(path: Path) -> LoadedIndex | None:
    version = _version(path)
    with _cache_lock:
        entry = _cache.get(path)
        if entry is None or entry[0] != version:
            return None
        _cache.move_to_end(path)
        return entry[1]


def _forget(path: Path) -> None:
    with _cache_lock:
        _cache.pop(path.absolute(), None)


def _version(path: Path) -> tuple[int, int] | None:
    """Changes whenever the directory is replaced (every swap writes a new manifest)."""
    try:
        st = (path / MANIFEST_FILE).stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_ino, st.st_mtime_ns)


# --- Searching ---------------------------------------------------------------------------


def search(
    index: LoadedIndex,
    query_vector: Any,
    top_k: int = 5,
    min_score: float = 0.0,
    category: str | None = None,
) -> list[Hit]:
    """The `top_k` passages most similar to the vector, best first, scoring ≥ `min_score`."""
    if top_k < 1:
        raise Invalid("top_k must be at least 1", field="top_k")
    query = np.asarray(query_vector, dtype=np.float32).reshape(1, -1)
    if query.shape[1] != index.manifest.dimension:
        raise Invalid(
            f"The query vector has {query.shape[1]} dimensions; the index '{index.name}' "
            f"holds {index.manifest.dimension}"
        )
    norm = float(np.linalg.norm(query))
    if norm > 0:
        query = query / norm
    params = None
    if category is not None:
        params = index._filters.get(category)
        if params is None:
            return []
    k = min(top_k, index.vectors)
    if k == 0:
        return []
    scores, rows = index.index.search(query, k, params=params)
    return [
        Hit(float(score), index.chunks[row])
        for score, row in zip(scores[0], rows[0], strict=True)
        if row >= 0 and score >= min_score
    ]


def check_compatible(index: LoadedIndex, embedder: Embedder) -> None:
    """IncompatibleEmbedder unless `embedder` makes vectors like the ones in the index."""
    m = index.manifest
    if embedder.model == m.model and embedder.dimension == m.dimension:
        return
    raise IncompatibleEmbedder(
        f"The index '{index.name}' was built with {m.provider} · {m.model} ({m.dimension} "
        f"dimensions) but the configured embedder is {describe_embedder(embedder)} "
        f"({embedder.dimension} dimensions); rebuild the index, or set EMBEDDING_PROVIDER and "
        "EMBEDDING_MODEL to what it was built with"
    )


def search_text(
    index: LoadedIndex,
    embedder: Embedder,
    query: str,
    top_k: int = 5,
    min_score: float = 0.0,
    category: str | None = None,
) -> list[Hit]:
    """Embed `query` and search; refuses an index built by another embedding model."""
    if not query.strip():
        raise Invalid("The question is empty", field="query")
    check_compatible(index, embedder)
    [vector] = embedder.embed([query.strip()])
    return search(index, vector, top_k=top_k, min_score=min_score, category=category)


# --- Building ----------------------------------------------------------------------------


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
        raise Invalid("There is nothing to index: no document has any text")
    report(0, 0, "splitting documents into chunks")
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
    report(0, total, f"{len(reuse)} chunks unchanged, {total} to embed")
    for start in range(0, total, EMBED_BATCH):
        rows = pending[start : start + EMBED_BATCH]
        vectors[rows] = _embed(embedder, [planned[i].embed_text for i in rows], dimension)
        report(start + len(rows), total, f"embedded {start + len(rows)} of {total} chunks")
    report(total, total, "writing the index")
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
    _forget(root / name)  # free the old version's memory now
    report(total, total, "done")
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
    if _version((root / name).absolute()) is None:
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
            f"{describe_embedder(embedder)} returned {vectors.shape[0]} vectors of "
            f"{vectors.shape[1] if vectors.ndim == 2 else '?'} dimensions for {len(texts)} texts",
            transient=False,
        )
    return vectors


def write_directory(
    path: Path, manifest: Manifest, vectors: Vectors, records: list[dict[str, Any]]
) -> Manifest:
    """Write an index's three files into the empty directory `path`; the final manifest."""
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


def _settled_exists(path: Path) -> bool:
    """Whether the index directory exists, waiting out a swap caught between its renames."""
    if path.is_dir():
        return True
    if not path.parent.is_dir():
        return False
    with disk.root_lock(path.parent):
        return path.is_dir()


def _existing(root: Path, name: str) -> Path:
    path = index_path(root, name)
    if not path.is_dir() or path.is_symlink():
        raise IndexNotFound(f"There is no index named '{name}'")
    return path


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
