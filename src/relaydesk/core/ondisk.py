"""Files that several threads and processes write: a lock per directory, atomic writes.

The news files and the knowledge indexes both live in the data directory and are
changed by jobs that may run in any worker process; these two helpers are what keeps
a reader from seeing half a file and two writers from interleaving. `inside` is the
one check every path built from a name passes before it is opened.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from relaydesk.core.errors import Invalid
from relaydesk.core.i18n import N_

MAX_NAME_BYTES = 255  # the longest file name Linux file systems accept


def inside(folder: Path, name: str) -> Path:
    """`folder / name`, once proven to be an entry of `folder`; Invalid for any other name.

    The name is refused when it could mean another folder (empty, '.', '..', a path
    separator), when it holds a NUL byte or a control character, or when the path,
    with every link followed, does not end directly inside `folder`.
    """
    shown = repr(name[:80])
    if name in ("", ".", ".."):
        raise Invalid(N_("%(name)s is not a name"), params={"name": shown})
    if any(ch in "/\\" or ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise Invalid(
            N_(
                "%(name)s is not a name: it must not contain '/', '\\', a NUL byte or another "
                "control character"
            ),
            params={"name": shown},
        )
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise Invalid(
            N_("%(name)s is too long for a name (at most %(limit)s bytes)"),
            params={"name": shown, "limit": MAX_NAME_BYTES},
        )
    path = folder / name
    try:
        leads_out = path.resolve().parent != folder.resolve()
    except (OSError, RuntimeError):  # a loop of links
        leads_out = True
    if leads_out:
        raise Invalid(N_("%(name)s leads outside its folder"), params={"name": shown})
    return path


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive among threads and processes that lock the same file (created if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_new(path: Path, data: bytes) -> None:
    """Create `path` (it must not exist) with `data`, flushed to disk."""
    with path.open("xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: readers see the old content or the new, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write_new(tmp, data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # left only when the write failed
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make the renames and creations inside directory `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def human_size(size: int) -> str:
    """A byte count as people read it: '5.2 MB'."""
    if size < 1000:
        return f"{size} bytes"
    if size < 1_000_000:
        return f"{size / 1000:.1f} kB"
    return f"{size / 1_000_000:.1f} MB"
