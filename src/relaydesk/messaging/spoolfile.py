"""The spool's files in DATA_DIR/spool: webhooks waiting for the database, and dead letters.

`webhooks.jsonl` takes new lines (appended and fsynced before Twilio gets its 200). A
replay renames it to `webhooks.<ns>.replaying` first, so lines that arrive meanwhile
start a new file; a work file is removed only once each of its lines is stored or set
aside in `dead.jsonl`. Lines are ASCII JSON, so nothing a webhook carries can make a
line unwritable. Several processes may share the folder: appends and rewrites hold an
exclusive `flock`, and replays hold another.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from relaydesk.core.config import get_settings
from relaydesk.core.db import utcnow

PENDING = "webhooks.jsonl"
DEAD = "dead.jsonl"
# What versions before the per-record replay left behind (one file, never removed).
LEGACY_WORK = "webhooks.replaying"
KINDS = ("inbound", "status")
DAMAGED = "damaged"
WORK_GLOB = "webhooks.*.replaying"
FILES_LOCK = ".files.lock"  # held while a file is appended to, renamed or rewritten
REPLAY_LOCK = ".replay.lock"
# What the CLI and the panel call an entry: 12 hexadecimal characters.
ENTRY_ID = re.compile(r"[0-9a-f]{12}")


@dataclass
class SpoolEntry:
    """One spooled webhook (or a line that could not be read, kind "damaged")."""

    id: str
    kind: str
    params: dict[str, str]
    token: str | None = None
    received_at: datetime | None = None
    line: str | None = None  # the unreadable text of a damaged line
    error: str | None = None
    failed_at: datetime | None = None
    tries: int = 0

    @property
    def sid(self) -> str:
        """The message's SID as Twilio sent it (empty when missing)."""
        params = self.params
        return params.get("MessageSid") or params.get("SmsMessageSid") or params.get("SmsSid") or ""

    def to_line(self) -> bytes:
        """The entry as one line of ASCII JSON."""
        data: dict[str, Any] = {"id": self.id, "kind": self.kind, "params": self.params}
        if self.token is not None:
            data["token"] = self.token
        if self.received_at is not None:
            data["at"] = self.received_at.isoformat()
        for name in ("line", "error"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        if self.failed_at is not None:
            data["failed_at"] = self.failed_at.isoformat()
        if self.tries:
            data["tries"] = self.tries
        return (json.dumps(data, ensure_ascii=True) + "\n").encode("ascii")


def new_entry(
    kind: str, params: dict[str, str], token: str | None, received_at: datetime | None
) -> SpoolEntry:
    """A new entry with its own id (what the CLI and the panel call it)."""
    return SpoolEntry(secrets.token_hex(6), kind, dict(params), token, received_at)


def parse_line(text: str) -> SpoolEntry:
    """Read one line; one that cannot be read becomes a "damaged" entry (never dropped)."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
            raise TypeError("not a spool entry")
        params = data["params"]
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in params.items()):
            raise TypeError("parameters must be text")
        given = data.get("id")
        return SpoolEntry(
            id=given if isinstance(given, str) and ENTRY_ID.fullmatch(given) else _line_id(text),
            kind=str(data.get("kind", "")),
            params=params,
            token=data.get("token") if isinstance(data.get("token"), str) else None,
            received_at=_when(data.get("at")),
            line=data.get("line") if isinstance(data.get("line"), str) else None,
            error=data.get("error") if isinstance(data.get("error"), str) else None,
            failed_at=_when(data.get("failed_at")),
            tries=data["tries"] if isinstance(data.get("tries"), int) else 0,
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return SpoolEntry(_line_id(text), DAMAGED, {}, line=text[:100_000])


def _line_id(text: str) -> str:
    # Lines from older versions carry no id: the same line always gets the same one.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def folder() -> Path:
    """DATA_DIR/spool."""
    return get_settings().data_dir / "spool"


@contextmanager
def _flock(name: str, blocking: bool = True) -> Iterator[bool]:
    """An exclusive lock shared by threads and processes; yields False when busy."""
    directory = folder()
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


def files_lock() -> Any:
    """Held while a file is appended to, renamed or rewritten."""
    return _flock(FILES_LOCK)


def replay_lock(blocking: bool = True) -> Any:
    """Held by whoever stores spooled records (one replay at a time per folder)."""
    return _flock(REPLAY_LOCK, blocking)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _append(path: Path, data: bytes) -> None:
    """Append bytes and fsync them (and the folder, when the file is new)."""
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        _fsync_dir(path.parent)


def _write_whole(path: Path, items: list[SpoolEntry]) -> None:
    """Replace a file's content atomically (a crash leaves the old or the new one)."""
    if not items:
        path.unlink(missing_ok=True)
        _fsync_dir(path.parent)
        return
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for entry in items:
            view = memoryview(entry.to_line())
            while view:
                view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)
    _fsync_dir(path.parent)


def append_pending(entry: SpoolEntry) -> None:
    """Keep one webhook for a later replay; raises OSError when the disk fails."""
    with files_lock():
        _append(folder() / PENDING, entry.to_line())


def append_dead(entry: SpoolEntry) -> None:
    """Set one record aside as a dead letter (once per id, however often it is replayed)."""
    with files_lock():
        path = folder() / DEAD
        if any(known.id == entry.id for known in read(path)):
            return
        _append(path, entry.to_line())


def take() -> list[Path]:
    """The work files to replay, oldest first; new lines are moved into a work file first."""
    directory = folder()
    if not directory.exists():
        return []
    with files_lock():
        # A rewrite holds this lock until its file is in place: any .partial is a crash's.
        for stale in directory.glob("*.partial"):
            stale.unlink(missing_ok=True)
        pending = directory / PENDING
        if pending.exists() and pending.stat().st_size:
            pending.rename(directory / f"webhooks.{time_key()}.replaying")
            _fsync_dir(directory)
    legacy = [directory / LEGACY_WORK] if (directory / LEGACY_WORK).exists() else []
    return legacy + sorted(directory.glob(WORK_GLOB))


def time_key() -> str:
    """A name part that sorts in time order."""
    return f"{utcnow().strftime('%Y%m%d%H%M%S%f')}{secrets.randbelow(1000):03d}"


def entries(path: Path) -> Iterator[tuple[int, SpoolEntry]]:
    """Each entry of a spool file with the byte offset of its line (read as it goes).

    Lines are split on b"\\n" only: a line from an older version may hold U+2028.
    """
    if not path.exists():
        return
    with open(path, "rb") as handle:
        offset = 0
        for raw in handle:
            start, offset = offset, offset + len(raw)
            text = raw.decode("utf-8", "replace").rstrip("\n")
            if text.strip():
                yield start, parse_line(text)


def read(path: Path) -> list[SpoolEntry]:
    """Every entry of a (small) spool file; a missing file has none."""
    return [entry for _, entry in entries(path)]


def keep_from(path: Path, offset: int) -> None:
    """Drop a work file's lines before `offset` (stored or set aside); the rest stay."""
    with files_lock():
        partial = path.with_name(path.name + ".partial")
        with open(path, "rb") as source, open(partial, "wb") as target:
            source.seek(offset)
            shutil.copyfileobj(source, target)
            target.flush()
            os.fsync(target.fileno())
        os.replace(partial, path)
        _fsync_dir(path.parent)


def finished(path: Path) -> None:
    """Remove a work file whose every line was stored or set aside."""
    with files_lock():
        path.unlink(missing_ok=True)
        _fsync_dir(path.parent)


def dead_letters() -> list[SpoolEntry]:
    """The dead letters, oldest first."""
    return read(folder() / DEAD)


def update_dead(remove: set[str], changed: dict[str, SpoolEntry] | None = None) -> None:
    """Remove dead letters by id and replace others (a retry's new error), in one rewrite."""
    changed = changed or {}
    with files_lock():
        path = folder() / DEAD
        current = read(path)
        kept = [changed.get(e.id, e) for e in current if e.id not in remove]
        if len(kept) != len(current) or changed:
            _write_whole(path, kept)


class SpoolCounts(NamedTuple):
    """Webhooks waiting for the database, and dead letters."""

    waiting: int
    dead: int


_line_counts: dict[Path, tuple[int, int, int]] = {}


def _lines(path: Path) -> int:
    """Lines in a file, cached by size and modification time (/health asks often)."""
    try:
        stat = path.stat()
    except OSError:
        return 0
    cached = _line_counts.get(path)
    if cached and cached[:2] == (stat.st_size, stat.st_mtime_ns):
        return cached[2]
    count, last = 0, b"\n"
    try:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                count += block.count(b"\n")
                last = block[-1:]
    except OSError:
        return 0
    count += last != b"\n"  # a last line cut short by a crash still counts
    _line_counts[path] = (stat.st_size, stat.st_mtime_ns, count)
    return count


def counts() -> SpoolCounts:
    """How many webhooks wait in the spool and how many are dead letters."""
    directory = folder()
    if not directory.exists():
        return SpoolCounts(0, 0)
    files = [directory / PENDING, directory / LEGACY_WORK, *directory.glob(WORK_GLOB)]
    for gone in set(_line_counts) - {*files, directory / DEAD}:
        _line_counts.pop(gone, None)
    return SpoolCounts(sum(_lines(p) for p in files), _lines(directory / DEAD))


def has_waiting() -> bool:
    """True when anything waits to be replayed (cheap: no file is read)."""
    directory = folder()
    pending = directory / PENDING
    if pending.exists() and pending.stat().st_size:
        return True
    return (directory / LEGACY_WORK).exists() or any(directory.glob(WORK_GLOB))
