"""Files that several threads and processes write: a lock per directory, atomic writes.

The news files and the knowledge indexes both live in the data directory and are
changed by jobs that may run in any worker process; these two helpers are what keeps
a reader from seeing half a file and two writers from interleaving.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
