"""Named vector indexes in a directory, one of them active: list, activate, delete, load.

Layout under `root` (the caller passes DATA_DIR/indexes):
  <name>/          one index (see manifest.py for its three files)
  .active          the active index's name, replaced atomically
  .lock            flock'ed while an index directory is swapped, deleted or activated
  .build-*/ .import-*/ .old-*/ .trash-*/   short-lived work directories
An index is never changed in place: a build or an import writes a new directory and
swaps it in (disk.py), so a reader sees the old index or the new one, whole. Building is
in build.py, searching a loaded index in search.py.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from relaydesk.core import ondisk
from relaydesk.core.errors import Conflict, Invalid, NotFound, RelaydeskError
from relaydesk.core.i18n import N_
from relaydesk.knowledge import disk
from relaydesk.knowledge.manifest import (
    CHUNKS_FILE,
    INDEX_FILE,
    MANIFEST_FILE,
    MAX_MANIFEST_BYTES,
    FormatError,
    Manifest,
    check_faiss_header,
    check_file,
    parse_chunks,
    valid_name,
)

log = logging.getLogger(__name__)


def faiss_module() -> Any:
    """FAISS, imported on first use: a process that never loads or builds an index does
    not carry it (13 MB of a server's memory)."""
    import faiss

    global _faiss_ready
    if not _faiss_ready:
        # One query against a flat index is a memory-bound scan: OpenMP threads add
        # spin-up and contention (p50 5.7 ms with one thread, 14.6 ms with two on a
        # 2-core machine) while concurrent requests already run on their own threads.
        faiss.omp_set_num_threads(1)
        _faiss_ready = True
    return faiss


_faiss_ready = False

ACTIVE_FILE = ".active"
MAX_CACHED = 4  # loaded indexes kept in memory per process


class IndexNotFound(NotFound):
    """No index of that name."""


class IncompatibleEmbedder(Conflict):
    """The index was built by another embedding model; its vectors mean nothing to this one."""

    code = "embedder_mismatch"


class IndexDamaged(RelaydeskError):
    """An index's files are missing, changed or unreadable."""

    status_code = 500
    code = "index_damaged"


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


def check_name(name: str) -> str:
    """`name` if it is a valid index name, else Invalid with the rule."""
    if not isinstance(name, str) or not valid_name(name):
        raise Invalid(
            N_(
                "An index name is 1 to 63 characters: lower-case letters, digits, '-' and '_', "
                "starting with a letter or digit"
            ),
            params={},
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
    forget_loaded(path)
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
        problem=None if complete else N_("the index files do not match their manifest"),
    )


def read_manifest(path: Path) -> Manifest:
    """The manifest of the index directory `path`; IndexDamaged when unreadable."""
    try:
        return Manifest.from_json(disk.read_limited(path / MANIFEST_FILE, MAX_MANIFEST_BYTES))
    except FileNotFoundError:
        raise IndexDamaged(
            N_("The index '%(name)s' has no %(file)s"),
            params={"name": path.name, "file": MANIFEST_FILE},
        ) from None
    except FormatError as exc:
        raise IndexDamaged(
            N_("The index '%(name)s' is damaged: %(problem)s"),
            params={"name": path.name, "problem": str(exc)},
        ) from None


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
            version = files_version(path)
            if version is None and _settled_exists(path):
                version = files_version(path)
            if version is None:
                raise IndexNotFound(N_("There is no index named '%(name)s'"), params={"name": name})
            cached = _cached(path)
            if cached is not None:
                return cached
            try:
                loaded = read_directory(path, name)
            except (FileNotFoundError, FormatError) as exc:
                if files_version(path) != version:
                    continue  # a build swapped the directory while it was read: read anew
                raise IndexDamaged(
                    N_("The index '%(name)s' is damaged: %(problem)s"),
                    params={"name": name, "problem": str(exc)},
                ) from None
            with _cache_lock:
                _cache[path] = (version, loaded)
                while len(_cache) > MAX_CACHED:
                    _cache.popitem(last=False)
            return loaded
    raise IndexDamaged(
        N_("The index '%(name)s' kept changing while it was read; try again"),
        params={"name": name},
    )


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
        index = faiss_module().deserialize_index(np.frombuffer(index_bytes, dtype=np.uint8))
    except RuntimeError as exc:
        raise FormatError(
            N_("FAISS cannot read %(file)s: %(reason)s") % {"file": INDEX_FILE, "reason": exc}
        ) from None
    if index.d != manifest.dimension or index.ntotal != manifest.vectors:
        raise FormatError(
            N_("%(file)s does not have the shape the manifest lists") % {"file": INDEX_FILE}
        )
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
    faiss = faiss_module()
    filters = {}
    for category, ids in rows.items():
        selector: Any
        if ids[-1] - ids[0] + 1 == len(ids):
            # Builds store each category's rows together: a range lets FAISS scan only them.
            selector = faiss.IDSelectorRange(ids[0], ids[-1] + 1, True)
        else:
            selector = faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64))
        # The keyword form keeps a Python reference to the selector (faiss's wrapper does
        # it), which the positional form would not.
        filters[category] = faiss.SearchParameters(sel=selector)
    return filters


def _cached(path: Path) -> LoadedIndex | None:
    version = files_version(path)
    with _cache_lock:
        entry = _cache.get(path)
        if entry is None or entry[0] != version:
            return None
        _cache.move_to_end(path)
        return entry[1]


def forget_loaded(path: Path) -> None:
    """Drop a loaded index from memory (it was replaced or deleted)."""
    with _cache_lock:
        _cache.pop(path.absolute(), None)


def files_version(path: Path) -> tuple[int, int] | None:
    """Changes whenever the directory is replaced (every swap writes a new manifest)."""
    try:
        st = (path / MANIFEST_FILE).stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_ino, st.st_mtime_ns)


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
        raise IndexNotFound(N_("There is no index named '%(name)s'"), params={"name": name})
    return path
