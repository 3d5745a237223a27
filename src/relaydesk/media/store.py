"""Content-addressed files under DATA_DIR/media: a file's name is its SHA-256.

The same photo sent twice is stored once, a name can never point outside the folder
(only 64 hex digits are accepted), and a file is written under a temporary name and
renamed, so a reader never sees half of it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from relaydesk.core.config import get_settings
from relaydesk.core.ondisk import write_atomically

_SHA256 = re.compile(r"[0-9a-f]{64}")


def media_dir() -> Path:
    """Where stored files live."""
    return get_settings().data_dir / "media"


def path_of(sha256: str) -> Path:
    """The file holding the content with this digest (ValueError for anything else)."""
    if not _SHA256.fullmatch(sha256):
        raise ValueError("not a SHA-256 digest")
    return media_dir() / sha256[:2] / sha256


def put(data: bytes) -> str:
    """Store `data` (once) and return its SHA-256."""
    digest = hashlib.sha256(data).hexdigest()
    path = path_of(digest)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data)
    return digest


def read(sha256: str) -> bytes:
    """The stored content (FileNotFoundError when it is gone)."""
    return path_of(sha256).read_bytes()
