"""Directories that change all at once: staging, swapping, locking, crash clean-up.

An index is never changed in place. A build or an import writes a complete new
directory under a hidden name, then `swap_in` renames the current one aside and the new
one into place while holding the root's lock (a reader that finds the name missing in
between waits for that lock and looks again). What a crashed process left behind is
put back or removed the next time the lock is taken.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from relaydesk.core.ondisk import file_lock, fsync_dir
from relaydesk.knowledge.manifest import FormatError, valid_name

LOCK_FILE = ".lock"
STALE_WORK_SECONDS = 3600  # a staging directory lives seconds; an hour means its writer died


def root_lock(root: Path) -> AbstractContextManager[None]:
    """Exclusive among threads and processes sharing `root` (swaps are short)."""
    return file_lock(root / LOCK_FILE)


@contextmanager
def work_dir(root: Path, purpose: str) -> Iterator[Path]:
    """A fresh hidden directory under `root`, removed on the way out unless swapped in."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / f".{purpose}-{secrets.token_hex(6)}"
    path.mkdir(mode=0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def swap_in(root: Path, name: str, staged: Path) -> None:
    """Replace (or create) the index `name` with the complete directory `staged`."""
    target = root / name
    aside: Path | None = None
    with root_lock(root):
        clean_work_dirs(root)
        if target.exists():
            aside = root / f".old-{name}-{secrets.token_hex(4)}"
            os.replace(target, aside)
        try:
            os.replace(staged, target)
        except OSError:
            if aside is not None:
                os.replace(aside, target)  # the old index goes back where it was
            raise
        fsync_dir(root)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def clean_work_dirs(root: Path) -> None:
    """Tidy what a crashed process left (called with the root lock held)."""
    now = time.time()
    for path in root.iterdir():
        if not path.name.startswith(".") or not path.is_dir() or path.is_symlink():
            continue
        kind, _, rest = path.name[1:].partition("-")
        name = rest.rpartition("-")[0]
        if kind == "old" and valid_name(name) and not (root / name).exists():
            os.replace(path, root / name)  # died between the two renames of a swap
        elif kind in ("old", "trash") or now - path.stat().st_mtime > STALE_WORK_SECONDS:
            shutil.rmtree(path, ignore_errors=True)


def read_limited(path: Path, limit: int) -> bytes:
    """The file's bytes; FormatError when it is longer than `limit` (read no further)."""
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FormatError(f"{path.name} is larger than {limit} bytes")
    return data
