"""`relaydesk restore PATH`: an archive back into an empty DATA_DIR (and an empty database).

The archive is untrusted until proven whole. A first pass reads every member's header
and the manifest without writing anything: a member that is absolute, has a '..' part,
is a link, a device or anything but a file or a folder, or is not in the manifest, and a
manifest entry missing from the archive, refuse it. The database must be the kind the
configuration uses (SQLite or PostgreSQL) and, on PostgreSQL, the target database must
have no tables. A second pass unpacks the files into a temporary folder beside the
files' destination, through the standard library's `data` extraction filter, checking
each file's size and SHA-256 as it is written. Only then is the database loaded and
are the files moved into DATA_DIR. Any refusal leaves DATA_DIR and the database as
they were.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError

from relaydesk.backups import database
from relaydesk.backups.manifest import (
    DATA,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    SQLITE_MEMBER,
    SUFFIX,
    DatabaseKind,
    FileEntry,
    Manifest,
    RestoreFailed,
    RestoreRefused,
    key_check,
    unusable_name,
)
from relaydesk.core.config import Settings
from relaydesk.core.ondisk import fsync_dir
from relaydesk.migrations import alembic_config

BLOCK = 1 << 20
SPARE_BYTES = 64 * 1024 * 1024  # free space wanted beyond the unpacked files
_KIND_LABEL = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
_UNREADABLE = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


@dataclass
class RestoreReport:
    """What `restore` put where, and what the user should know before starting."""

    manifest: Manifest
    data_dir: Path
    files: int  # DATA_DIR's files (the database not counted)
    data_bytes: int
    database: str  # where the database went: a file, or a PostgreSQL database's name
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def restore(archive: Path, settings: Settings) -> RestoreReport:
    """Restore `archive` into settings' DATA_DIR and database; RestoreRefused explains a refusal.

    `settings` must come from `load_settings(create_files=False)`: reading the
    configuration must not itself put a generated secret key into DATA_DIR.
    """
    _check_archive_name(archive)
    configured: DatabaseKind = "sqlite" if settings.is_sqlite else "postgresql"
    data_dir = Path(os.path.abspath(settings.data_dir))
    _check_empty(data_dir)
    sqlite_dest = Path(os.path.abspath(settings.sqlite_path)) if configured == "sqlite" else None
    if sqlite_dest is not None and not _inside(sqlite_dest, data_dir):
        for suffix in ("", "-wal", "-shm", "-journal"):
            existing = Path(f"{sqlite_dest}{suffix}")
            if existing.exists() or existing.is_symlink():
                raise RestoreRefused(f"DB_PATH {existing} already exists; nothing was changed")
    manifest = _read_and_check(archive)
    if manifest.database_kind != configured:
        raise RestoreRefused(
            f"it holds a {_KIND_LABEL[manifest.database_kind]} database but this "
            f"configuration uses {_KIND_LABEL[configured]} ({_why(configured)}); "
            f"restore it with the same kind of database, then move the data with "
            f"'relaydesk db copy'"
        )
    head = _check_revision(manifest)
    if configured == "postgresql":
        database.pg_tool("pg_restore")  # there before anything is unpacked
        tables = database.pg_tables(settings.sqlalchemy_url)
        if tables:
            shown = ", ".join(tables[:3]) + (", …" if len(tables) > 3 else "")
            raise RestoreRefused(
                f"the PostgreSQL database of DATABASE_URL is not empty ({len(tables)} "
                f"tables: {shown}); restore into a new, empty database"
            )
    _check_space(data_dir, manifest)
    report = _unpack_and_place(archive, manifest, settings, data_dir, sqlite_dest)
    report.warnings.extend(_key_warnings(manifest, settings))
    if manifest.alembic_revision != head:
        report.notes.append(
            "the archive's database schema is older than this relaydesk's: "
            + (
                "'relaydesk serve' migrates it on start"
                if configured == "sqlite"
                else "run 'relaydesk migrate' before 'relaydesk serve'"
            )
        )
    return report


def _why(kind: DatabaseKind) -> str:
    return "DATABASE_URL is set" if kind == "postgresql" else "DATABASE_URL is not set"


def _refused(problem: str, name: str) -> RestoreRefused:
    return RestoreRefused(f"it contains {problem} ({name[:80]!r})")


def _check_archive_name(archive: Path) -> None:
    if not archive.name.endswith(SUFFIX):
        raise RestoreRefused(f"{archive} does not end in {SUFFIX}: it is not a relaydesk backup")
    if not archive.is_file():
        raise RestoreRefused(f"{archive} does not exist or is not a file")


def _check_empty(data_dir: Path) -> None:
    if data_dir.is_symlink() and not data_dir.exists():
        raise RestoreRefused(f"DATA_DIR {data_dir} is a link to nothing")
    if not data_dir.exists():
        return
    if not data_dir.is_dir():
        raise RestoreRefused(f"DATA_DIR {data_dir} is not a directory")
    if any(data_dir.iterdir()):
        raise RestoreRefused(
            f"DATA_DIR {data_dir} is not empty; restore only into a new or empty data "
            "directory (nothing was changed)"
        )


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


# --- First pass: headers and the manifest, nothing written ----------------------------------


def _read_and_check(archive: Path) -> Manifest:
    """The archive's manifest, once every member's header agrees with it."""
    files: dict[str, tarfile.TarInfo] = {}
    folders: list[str] = []
    raw_manifest: bytes | None = None
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = member.name
                problem = unusable_name(name)
                if problem is not None:
                    raise _refused(problem, name)
                if member.issym() or member.islnk():
                    raise _refused("a link", name)
                if member.isdir():
                    folders.append(name)
                    continue
                if not member.isreg() or member.issparse():
                    raise _refused("a device or another special file", name)
                if name in files:
                    raise _refused("the same file twice", name)
                files[name] = member
                if name == MANIFEST:
                    if member.size > MAX_MANIFEST_BYTES:
                        raise RestoreRefused(f"its {MANIFEST} is implausibly large")
                    handle = tar.extractfile(member)
                    assert handle is not None  # a regular file
                    raw_manifest = handle.read()
    except _UNREADABLE as exc:
        raise RestoreRefused(f"it is not a readable {SUFFIX} archive ({exc})") from None
    if raw_manifest is None:
        raise RestoreRefused(f"it has no {MANIFEST}; it is not a relaydesk backup")
    manifest = Manifest.from_json(raw_manifest)
    listed = {entry.path: entry for entry in manifest.files}
    for name, member in files.items():
        if name == MANIFEST:
            continue
        entry = listed.get(name)
        if entry is None:
            raise _refused("a file its manifest does not list", name)
        if member.size != entry.size:
            raise RestoreRefused(
                f"{name} is {member.size} bytes in the archive but {entry.size} in its manifest"
            )
    for path in listed:
        if path not in files:
            raise RestoreRefused(f"{path} is listed in its manifest but missing from the archive")
    parents = {"/".join(p.split("/")[:i]) for p in listed for i in range(1, p.count("/") + 1)}
    for name in folders:
        if name not in parents:
            raise _refused("a folder its manifest does not list", name)
    return manifest


def _check_revision(manifest: Manifest) -> str | None:
    """The newest revision this relaydesk knows; refuse a database from a newer one."""
    scripts = ScriptDirectory.from_config(alembic_config())
    head = scripts.get_current_head()
    if manifest.alembic_revision is not None:
        try:
            scripts.get_revision(manifest.alembic_revision)
        except (RevisionError, CommandError):
            raise RestoreRefused(
                f"its database schema ({manifest.alembic_revision}) comes from a newer "
                f"relaydesk ({manifest.relaydesk_version}) than this one; upgrade relaydesk first"
            ) from None
    return head


def _check_space(data_dir: Path, manifest: Manifest) -> None:
    existing = data_dir
    while not existing.exists():
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    needed = manifest.data_bytes + SPARE_BYTES
    if free < needed:
        raise RestoreRefused(
            f"it unpacks to {manifest.data_bytes:,} bytes but {existing} has only "
            f"{free:,} bytes free"
        )


# --- Second pass: unpack, verify, put in place ------------------------------------------------


def _unpack_and_place(
    archive: Path,
    manifest: Manifest,
    settings: Settings,
    data_dir: Path,
    sqlite_dest: Path | None,
) -> RestoreReport:
    # Beside DATA_DIR when it does not exist yet (then one rename puts it in place);
    # inside it when it exists (it may be a mount point: a rename from outside would
    # cross file systems).
    new_dir = not data_dir.exists()
    if new_dir:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.restore-", dir=data_dir.parent))
    else:
        staging = Path(tempfile.mkdtemp(prefix=".relaydesk-restore-", dir=data_dir))
    try:
        _unpack(archive, manifest, staging)
        files = [e for e in manifest.files if e.path != manifest.database_file]
        staged_data = staging / DATA
        staged_data.mkdir(exist_ok=True)
        if manifest.database_kind == "sqlite":
            assert sqlite_dest is not None
            snapshot = staging / SQLITE_MEMBER
            revision = database.sqlite_check(snapshot)
            if revision != manifest.alembic_revision:
                raise RestoreRefused(
                    f"its database is at schema {revision}, its manifest says "
                    f"{manifest.alembic_revision}"
                )
            where = str(sqlite_dest)
            if _inside(sqlite_dest, data_dir):
                inner = staged_data / sqlite_dest.relative_to(data_dir)
                if inner.exists():
                    raise RestoreRefused(
                        f"it holds a file at the database's place ({inner.relative_to(staging)})"
                    )
                inner.parent.mkdir(parents=True, exist_ok=True)
                os.rename(snapshot, inner)
            else:
                _move_outside(snapshot, sqlite_dest)
        else:
            database.pg_restore(settings.sqlalchemy_url, staging / manifest.database_file)
            where = f"database {database.Connection.from_url(settings.sqlalchemy_url).database}"
        try:
            _place(staged_data, data_dir, new_dir)
        except OSError as exc:
            raise RestoreFailed(
                f"the database was restored ({where}) but the files could not be moved into "
                f"{data_dir}: {exc.strerror or exc}; they are in {staged_data}"
            ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return RestoreReport(
        manifest=manifest,
        data_dir=data_dir,
        files=len(files),
        data_bytes=sum(e.size for e in files),
        database=where,
    )


def _unpack(archive: Path, manifest: Manifest, staging: Path) -> None:
    """Every listed file into `staging`, each checked against its size and SHA-256."""
    expected = {entry.path: entry for entry in manifest.files}
    written: set[str] = set()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.name == MANIFEST or member.isdir():
                    continue
                entry = expected.get(member.name)
                if entry is None or member.name in written or not member.isreg():
                    # The archive changed since the first pass.
                    raise _refused("a member that does not match its manifest", member.name)
                try:
                    checked = tarfile.data_filter(member, str(staging))
                except tarfile.FilterError as exc:
                    problem = f"a member the extraction filter refuses ({exc})"
                    raise _refused(problem, member.name) from None
                _extract(tar, checked, entry, staging)
                written.add(member.name)
    except _UNREADABLE as exc:
        raise RestoreRefused(f"it is not a readable {SUFFIX} archive ({exc})") from None
    missing = set(expected) - written
    if missing:
        raise RestoreRefused(f"{sorted(missing)[0]} is missing from the archive")


def _extract(
    tar: tarfile.TarFile, member: tarfile.TarInfo, entry: FileEntry, staging: Path
) -> None:
    dest = staging / member.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(member)
    assert source is not None  # a regular file
    digest = hashlib.sha256()
    size = 0
    mode = (member.mode if member.mode is not None else 0o600) & 0o755
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with source, os.fdopen(fd, "wb") as out:
        while block := source.read(BLOCK):
            size += len(block)
            digest.update(block)
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    if size != entry.size or digest.hexdigest() != entry.sha256:
        raise RestoreRefused(
            f"{entry.path} does not match its checksum in the manifest: the archive is "
            "damaged or was changed"
        )


def _move_outside(snapshot: Path, dest: Path) -> None:
    """The SQLite file to a DB_PATH outside DATA_DIR (maybe another file system)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".restoring")
    shutil.copyfile(snapshot, partial)
    if dest.exists():
        partial.unlink()
        raise RestoreRefused(f"DB_PATH {dest} appeared during the restore; nothing was changed")
    os.rename(partial, dest)
    fsync_dir(dest.parent)


def _place(staged_data: Path, data_dir: Path, new_dir: bool) -> None:
    if new_dir:
        os.rename(staged_data, data_dir)
        fsync_dir(data_dir.parent)
        return
    for item in sorted(staged_data.iterdir()):
        os.rename(item, data_dir / item.name)
    fsync_dir(data_dir)


def _key_warnings(manifest: Manifest, settings: Settings) -> list[str]:
    """What to do about SECRET_KEY so the restored secrets can be read."""
    given = settings.secret_key  # from the environment only (nothing was generated)
    same = (
        given is not None
        and manifest.secret_key_check is not None
        and key_check(given) == manifest.secret_key_check
    )
    if manifest.secret_key == "environment":  # noqa: S105 (where the key was, not a key)
        if given is None:
            return [
                "the archive's secrets were encrypted with a SECRET_KEY from the "
                "environment, which the archive does not hold: set the same SECRET_KEY (or "
                "SECRET_KEY_FILE) before starting relaydesk, or the saved Twilio token and "
                "API keys cannot be read"
            ]
        if not same:
            return [
                "SECRET_KEY set here is not the one the archive's secrets were encrypted "
                "with: set the original SECRET_KEY, or the saved Twilio token and API keys "
                "cannot be read"
            ]
        return []
    if given is not None and not same:
        return [
            "SECRET_KEY is set in this environment and wins over the restored "
            f"{settings.data_dir}/.secret_key, but it is a different key: unset it (or set "
            "the original), or the saved Twilio token and API keys cannot be read"
        ]
    return []
