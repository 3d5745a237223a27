"""`relaydesk backup PATH`: one `.tar.gz` with the database, DATA_DIR's files and a manifest.

The database is copied first (one consistent snapshot), then the files: a media file is
written before the row that names it, so every file the snapshot refers to is there
(later ones are harmless extras). Folders that relaydesk changes as a whole are read
while holding their own locks: the news files (one scrape's merge at a time), the
knowledge indexes (no swap halfway) and the webhook spool (no append or rewrite).
The archive is written as PATH.partial and renamed when complete.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import stat
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO

from relaydesk.backups import database
from relaydesk.backups.manifest import (
    DATA,
    POSTGRES_MEMBER,
    SQLITE_MEMBER,
    SUFFIX,
    BackupError,
    DatabaseKind,
    FileEntry,
    KeySource,
    Manifest,
    Skipped,
    key_check,
    unusable_name,
)
from relaydesk.core import clock
from relaydesk.core.config import SANDBOX_CREDENTIALS_FILE, Settings, get_settings
from relaydesk.core.ondisk import file_lock, fsync_dir
from relaydesk.knowledge import disk as index_disk
from relaydesk.messaging import spoolfile
from relaydesk.news import files as news_files

log = logging.getLogger(__name__)

SECRET_KEY_FILE = ".secret_key"  # noqa: S105 (a file name)
# The emulator's state (channels.sandbox.runtime.DB_NAME; not imported, so a worker
# does not load the emulator to run the schedule).
SANDBOX_DB = "sandbox.db"
TOP_FILES = (SECRET_KEY_FILE, SANDBOX_CREDENTIALS_FILE)
# DATA_DIR's folders, each with the lock its writers hold (None: files written whole).
FOLDERS: dict[str, Callable[[Path], AbstractContextManager[object]] | None] = {
    "media": None,  # content-addressed, each file written once under a temporary name
    "indexes": index_disk.root_lock,
    "news": news_files.directory_lock,
    "documents": None,  # knowledge documents: each file written whole (write_atomically)
    "voicebot": None,  # exported archives
    "spool": lambda folder: file_lock(folder / spoolfile.FILES_LOCK),
}
COMPRESS_LEVEL = 6
# Lock files of the folders above: empty, made again on first use.
LOCK_FILES = frozenset(
    {index_disk.LOCK_FILE, news_files.LOCK_NAME, spoolfile.FILES_LOCK, spoolfile.REPLAY_LOCK}
)
_QUEUE = re.compile(r"queue.*\.db(-wal|-shm|-journal)?")
_WRITING = re.compile(r"\..+\.\d+\.[0-9a-f]{8}\.tmp")  # core.ondisk.write_atomically


@dataclass(frozen=True)
class BackupReport:
    """What `write_backup` wrote."""

    path: Path
    manifest: Manifest
    archive_bytes: int
    seconds: float


def relaydesk_version() -> str:
    """The installed relaydesk's version."""
    try:
        return version("relaydesk")
    except PackageNotFoundError:  # pragma: no cover (a source tree without metadata)
        return "unknown"


def check_target(path: Path) -> None:
    """BackupError unless `path` is a new `.tar.gz` file name."""
    if not path.name.endswith(SUFFIX) or path.name == SUFFIX:
        raise BackupError(f"{path} must end in {SUFFIX}: a backup is a gzipped tar archive")
    if path.exists() or path.is_symlink():
        raise BackupError(f"{path} already exists; choose a new file name")


def write_backup(path: Path, settings: Settings | None = None) -> BackupReport:
    """Write the archive to `path` (which must not exist); BackupError explains a failure."""
    settings = settings or get_settings()
    started = time.monotonic()
    check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        raw = partial.open("xb")
    except FileExistsError:
        raise BackupError(
            f"{partial} exists: another backup is writing it, or one was interrupted "
            "(then delete it)"
        ) from None
    try:
        with raw, tempfile.TemporaryDirectory(dir=path.parent, prefix=".relaydesk-backup-") as tmp:
            manifest = _write(
                raw, Path(tmp), settings, own={_absolute(partial), _absolute(Path(tmp))}
            )
            raw.flush()
            os.fsync(raw.fileno())
        if path.exists():
            raise BackupError(f"{path} appeared while the backup was written; it was kept")
        partial.rename(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    report = BackupReport(path, manifest, path.stat().st_size, time.monotonic() - started)
    log.info(
        "backup written to %s: %d files, %d bytes (%.1f s)",
        path,
        len(manifest.files),
        report.archive_bytes,
        report.seconds,
    )
    return report


def _write(raw: IO[bytes], work: Path, settings: Settings, own: set[Path]) -> Manifest:
    kind: DatabaseKind = "sqlite" if settings.is_sqlite else "postgresql"
    server_version = None
    if kind == "sqlite":
        source = settings.sqlite_path
        if not source.is_file():
            raise BackupError(f"there is no database at {source}")
        snapshot, member = work / "app.db", SQLITE_MEMBER
        revision = database.sqlite_snapshot(source, snapshot)
    else:
        snapshot, member = work / "relaydesk.dump", POSTGRES_MEMBER
        revision, server_version = database.pg_revision_and_version(settings.sqlalchemy_url)
        database.pg_dump(settings.sqlalchemy_url, snapshot)
    data_dir = settings.data_dir
    sandbox = data_dir / SANDBOX_DB
    sandbox_copy = work / SANDBOX_DB
    skipped: list[Skipped] = []
    has_sandbox = _regular(sandbox, SANDBOX_DB, skipped)
    if has_sandbox:
        database.sqlite_snapshot(sandbox, sandbox_copy)

    entries: list[FileEntry] = []
    with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=COMPRESS_LEVEL) as tar:
        entries.append(_add_path(tar, snapshot, member))
        if has_sandbox:
            entries.append(_add_path(tar, sandbox_copy, f"{DATA}/{SANDBOX_DB}"))
        for name, lock in FOLDERS.items():
            folder = data_dir / name
            if folder.is_symlink():
                skipped.append(Skipped(name, "a symbolic link (not followed)"))
                continue
            if not folder.is_dir():
                continue
            with lock(folder) if lock is not None else nullcontext():
                for source, relative in _walk(folder, name, skipped, own):
                    added = _add_live(tar, source, f"{DATA}/{relative}", relative, skipped)
                    if added is not None:
                        entries.append(added)
        for name in TOP_FILES:
            found = _regular(data_dir / name, name, skipped)
            if found:
                added = _add_live(tar, data_dir / name, f"{DATA}/{name}", name, skipped)
                if added is not None:
                    entries.append(added)
        skipped.extend(_left_out_at_top(data_dir, settings, own))
        secret = _key_source(data_dir, settings)
        manifest = Manifest(
            relaydesk_version=relaydesk_version(),
            created_at=clock.now().replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            database_kind=kind,
            database_file=member,
            alembic_revision=revision,
            server_version=server_version,
            secret_key=secret,
            secret_key_check=key_check(settings.secret_key) if settings.secret_key else None,
            files=tuple(entries),
            skipped=tuple(skipped),
        )
        _add_bytes(tar, manifest.to_json(), "manifest.json")
    return manifest


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))


def _key_source(data_dir: Path, settings: Settings) -> KeySource:
    """`archive` when SECRET_KEY is the generated one in DATA_DIR/.secret_key."""
    path = data_dir / SECRET_KEY_FILE
    try:
        if path.is_symlink() or not path.is_file():
            return "environment"
        return "archive" if path.read_text().strip() == settings.secret_key else "environment"
    except OSError:
        return "environment"


def _regular(path: Path, relative: str, skipped: list[Skipped]) -> bool:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(mode):
        skipped.append(Skipped(relative, "a symbolic link (not followed)"))
        return False
    if not stat.S_ISREG(mode):
        skipped.append(Skipped(relative, "not a regular file"))
        return False
    return True


def _walk(
    folder: Path, relative: str, skipped: list[Skipped], own: set[Path]
) -> Iterator[tuple[Path, str]]:
    """The regular files under `folder` (links not followed), sorted, with their paths."""
    try:
        with os.scandir(folder) as scan:
            items = sorted(scan, key=lambda item: item.name)
    except FileNotFoundError:
        return
    for item in items:
        path, rel = Path(item.path), f"{relative}/{item.name}"
        if _absolute(path) in own:
            continue
        problem = unusable_name(rel)
        if problem is not None:
            skipped.append(Skipped(rel.encode("utf-8", "replace").decode(), problem))
            continue
        try:
            mode = item.stat(follow_symlinks=False).st_mode
        except FileNotFoundError:
            continue  # removed meanwhile
        if stat.S_ISLNK(mode):
            skipped.append(Skipped(rel, "a symbolic link (not followed)"))
        elif stat.S_ISDIR(mode):
            if relative == "indexes" and item.name.startswith("."):
                skipped.append(Skipped(rel, "unfinished work of an index build or import"))
                continue
            yield from _walk(path, rel, skipped, own)
        elif not stat.S_ISREG(mode):
            skipped.append(Skipped(rel, "not a regular file"))
        elif item.name in LOCK_FILES:
            continue
        elif _WRITING.fullmatch(item.name):
            skipped.append(Skipped(rel, "a file being written"))
        else:
            yield path, rel


def _left_out_at_top(data_dir: Path, settings: Settings, own: set[Path]) -> list[Skipped]:
    """What else DATA_DIR holds, and why the archive leaves it out."""
    known = {*FOLDERS, *TOP_FILES, SANDBOX_DB}
    database_file = settings.sqlite_path.resolve() if settings.is_sqlite else None
    out = []
    try:
        names = sorted(p.name for p in data_dir.iterdir())
    except FileNotFoundError:
        return []
    for name in names:
        path = data_dir / name
        if name in known or _absolute(path) in own:
            continue
        if database_file is not None and path.resolve() == database_file:
            continue  # it is the snapshot
        if _QUEUE.fullmatch(name):
            reason = "the task queue (transient: the sweeps rebuild its work from the database)"
        elif name.endswith(("-wal", "-shm", "-journal")):
            reason = "an SQLite journal (the snapshots hold what it holds)"
        elif path.is_symlink():
            reason = "a symbolic link (not followed)"
        else:
            reason = "not part of relaydesk's data"
        out.append(Skipped(name, reason))
    return out


class _Hashing:
    """Reads exactly `size` bytes of `source` for tarfile, hashing them; pads if it shrank."""

    def __init__(self, source: IO[bytes], size: int) -> None:
        self.source = source
        self.left = size
        self.digest = hashlib.sha256()
        self.short = False

    def read(self, n: int = -1) -> bytes:
        want = self.left if n < 0 else min(n, self.left)
        block = self.source.read(want) if want else b""
        if len(block) < want:
            self.short = True
            block += b"\0" * (want - len(block))
        self.left -= len(block)
        self.digest.update(block)
        return block


def _tarinfo(name: str, size: int, mode: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode & 0o755 or 0o600
    info.mtime = int(mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_path(tar: tarfile.TarFile, path: Path, name: str) -> FileEntry:
    """Add a file this backup made itself (a snapshot): it does not change."""
    with path.open("rb") as handle:
        status = os.fstat(handle.fileno())
        return _add_open(tar, handle, name, status)


def _add_live(
    tar: tarfile.TarFile, path: Path, name: str, relative: str, skipped: list[Skipped]
) -> FileEntry | None:
    """Add a file others may be changing: its length when opened is what is copied."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None  # removed meanwhile (a replaced index, a pruned news file)
    except PermissionError:
        skipped.append(Skipped(relative, "not readable by this user"))
        return None
    with handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            skipped.append(Skipped(relative, "not a regular file"))
            return None
        return _add_open(tar, handle, name, status)


def _add_open(
    tar: tarfile.TarFile, handle: IO[bytes], name: str, status: os.stat_result
) -> FileEntry:
    info = _tarinfo(name, status.st_size, status.st_mode, status.st_mtime)
    reader = _Hashing(handle, status.st_size)
    tar.addfile(info, reader)
    if reader.short:
        raise BackupError(f"{name} became shorter while it was read; run the backup again")
    return FileEntry(name, status.st_size, reader.digest.hexdigest())


def _add_bytes(tar: tarfile.TarFile, data: bytes, name: str) -> None:
    info = _tarinfo(name, len(data), 0o644, clock.now().timestamp())
    tar.addfile(info, io.BytesIO(data))
