"""An archive's table of contents (`manifest.json`) and the names its members may have."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from relaydesk.core.errors import RelaydeskError

FORMAT = "relaydesk-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATA = "data"  # DATA_DIR's files, under their own relative paths
DATABASE = "database"
SQLITE_MEMBER = f"{DATABASE}/app.db"
POSTGRES_MEMBER = f"{DATABASE}/relaydesk.dump"  # pg_dump --format=custom
SUFFIX = ".tar.gz"
MAX_MANIFEST_BYTES = 256 * 1024 * 1024  # ~1.5 million files
MAX_PATH_BYTES = 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")
KEY_CHECK_TEXT = b"relaydesk backup: is this the SECRET_KEY the secrets were encrypted with?"

DatabaseKind = Literal["sqlite", "postgresql"]
KeySource = Literal["archive", "environment"]


class BackupError(RelaydeskError):
    """A backup could not be written; the message says why."""

    code = "backup_failed"


class RestoreRefused(RelaydeskError):
    """An archive was not restored; nothing was changed. The message says why."""

    code = "restore_refused"


class RestoreFailed(RelaydeskError):
    """A restore stopped after it had begun to put things in place; the message says where."""

    code = "restore_failed"


def key_check(secret_key: str) -> str:
    """A value that tells whether two SECRET_KEYs are the same, without holding either."""
    return hmac.new(secret_key.encode(), KEY_CHECK_TEXT, hashlib.sha256).hexdigest()


def unusable_name(path: str) -> str | None:
    """Why `path` cannot name a member of an archive, or None when it can.

    A member is a relative path of plain names joined by '/': nothing absolute, no '.'
    or '..', no empty part, no backslash, NUL or other control character, valid text.
    """
    if not path:
        return "an empty name"
    if path.startswith("/"):
        return "an absolute path"
    parts = path.split("/")
    if ".." in parts:
        return "a path that leads out of its folder ('..')"
    if any(part in ("", ".") for part in parts):
        return "a path with an empty or '.' part"
    if any(ord(ch) < 32 or ord(ch) == 127 or ch == "\\" for ch in path):
        return "a name with a backslash or a control character"
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        return "a name that is not valid text"
    if len(encoded) > MAX_PATH_BYTES:
        return "a name that is too long"
    return None


@dataclass(frozen=True)
class FileEntry:
    """One file of the archive: where it is, how long it is, its SHA-256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Skipped:
    """Something in DATA_DIR the archive leaves out, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Manifest:
    """What an archive holds."""

    relaydesk_version: str
    created_at: str  # ISO 8601, UTC
    database_kind: DatabaseKind
    database_file: str  # SQLITE_MEMBER or POSTGRES_MEMBER
    alembic_revision: str | None
    server_version: str | None  # PostgreSQL's, for pg_restore of the same major version
    secret_key: KeySource
    # HMAC-SHA256 of a fixed text under SECRET_KEY: tells whether a key is the same one
    # without holding it (the encrypted settings in the database tell as much).
    secret_key_check: str | None
    files: tuple[FileEntry, ...]
    skipped: tuple[Skipped, ...] = ()

    def to_json(self) -> bytes:
        """The manifest as written into the archive."""
        data = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "relaydesk_version": self.relaydesk_version,
            "created_at": self.created_at,
            "database": {
                "kind": self.database_kind,
                "file": self.database_file,
                "alembic_revision": self.alembic_revision,
                "server_version": self.server_version,
            },
            "secret_key": {"source": self.secret_key, "check": self.secret_key_check},
            "files": [asdict(entry) for entry in self.files],
            "skipped": [asdict(entry) for entry in self.skipped],
        }
        return (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode("utf-8")

    @property
    def data_bytes(self) -> int:
        """The size of every file together, unpacked."""
        return sum(entry.size for entry in self.files)

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        """Read a manifest; RestoreRefused naming the first thing that is wrong."""
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise RestoreRefused(f"its {MANIFEST} is not valid JSON") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise RestoreRefused(f"its {MANIFEST} is not a relaydesk backup's")
        version = data.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise RestoreRefused(f"its {MANIFEST} has no valid format_version")
        if version > FORMAT_VERSION:
            raise RestoreRefused(
                f"it was written in backup format {version} by a newer relaydesk "
                f"(this one reads format {FORMAT_VERSION}); upgrade relaydesk first"
            )
        try:
            database = _dict(data, "database")
            key = _dict(data, "secret_key")
            kind = _choice(database, "kind", ("sqlite", "postgresql"))
            manifest = cls(
                relaydesk_version=_text(data, "relaydesk_version"),
                created_at=_text(data, "created_at"),
                database_kind=kind,  # type: ignore[arg-type]
                database_file=_text(database, "file"),
                alembic_revision=_text(database, "alembic_revision", optional=True),
                server_version=_text(database, "server_version", optional=True),
                secret_key=_choice(key, "source", ("archive", "environment")),  # type: ignore[arg-type]
                secret_key_check=_text(key, "check", optional=True),
                files=tuple(_file(item) for item in _list(data, "files")),
                skipped=tuple(
                    Skipped(_text(item, "path"), _text(item, "reason"))
                    for item in _list(data, "skipped")
                    if isinstance(item, dict)
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RestoreRefused(f"its {MANIFEST} is damaged: {exc}") from None
        manifest._check()
        return manifest

    def _check(self) -> None:
        expected = SQLITE_MEMBER if self.database_kind == "sqlite" else POSTGRES_MEMBER
        if self.database_file != expected:
            raise RestoreRefused(f"its {MANIFEST} names {self.database_file!r} as the database")
        seen: set[str] = set()
        for entry in self.files:
            problem = unusable_name(entry.path)
            if problem is None and not (
                entry.path == expected or entry.path.startswith(DATA + "/")
            ):
                problem = "a file outside data/ and the database"
            if problem is not None:
                raise RestoreRefused(f"its {MANIFEST} lists {problem} ({entry.path[:80]!r})")
            if entry.path in seen:
                raise RestoreRefused(f"its {MANIFEST} lists {entry.path!r} twice")
            seen.add(entry.path)
        if expected not in seen:
            raise RestoreRefused(f"its {MANIFEST} does not list the database ({expected})")


def _dict(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data[key]
    if not isinstance(value, dict):
        raise TypeError(f"'{key}' is not an object")
    return value


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise TypeError(f"'{key}' is not a list")
    return value


def _text(data: dict[str, Any], key: str, *, optional: bool = False) -> Any:
    value = data.get(key) if optional else data[key]
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"'{key}' is not text")
    return value


def _choice(data: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = _text(data, key)
    if value not in allowed:
        raise ValueError(f"'{key}' is {str(value)[:40]!r}, not one of {', '.join(allowed)}")
    return str(value)


def _file(item: Any) -> FileEntry:
    if not isinstance(item, dict):
        raise TypeError("a file entry is not an object")
    size, digest = item.get("size"), item.get("sha256")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"the size of {str(item.get('path'))[:80]!r} is not a byte count")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise ValueError(f"the sha256 of {str(item.get('path'))[:80]!r} is not a SHA-256")
    return FileEntry(_text(item, "path"), size, digest)
