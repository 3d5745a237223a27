"""The on-disk format of one index: three files, a manifest that vouches for the others.

An index directory (and a backup ZIP) holds exactly:
  index.faiss    faiss.write_index of an IndexFlatIP over unit vectors (row i = chunk i)
  chunks.json    {"chunks": [...]}: the text and source of every vector, in row order
  manifest.json  format version, embedding provider/model/dimension, counts, times,
                 and the size and SHA-256 of the two files above
Everything is read as JSON or raw floats; nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import asdict, dataclass, field
from typing import Any

from relaydesk.core.i18n import N_

FORMAT = "relaydesk-knowledge-index"
VERSION = 1
INDEX_FILE = "index.faiss"
CHUNKS_FILE = "chunks.json"
MANIFEST_FILE = "manifest.json"
DATA_FILES = (INDEX_FILE, CHUNKS_FILE)
MAX_MANIFEST_BYTES = 1 << 20

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK_FIELDS = ("id", "url", "title", "category", "text", "doc_hash", "chunk_hash")

# faiss.write_index of an IndexFlatIP: fourcc, d (int32), ntotal (int64), two unused
# int64, is_trained (uint8), metric type (int32, 0 = inner product), then the float
# count (uint64) and the floats. Checked before faiss parses a file it did not write.
_FLAT_IP_FOURCC = b"IxFI"
_FLAT_HEADER = struct.Struct("<4siqqqBiQ")
METRIC_INNER_PRODUCT = 0


class FormatError(ValueError):
    """A file of an index does not have the expected content; the message says what.

    Shown inside IndexDamaged and BackupRefused messages; the fixed ones are marked N_ so
    the panel translates them there.
    """


def valid_name(name: str) -> bool:
    """True for names like "news" or "faq-2024": lower-case letters, digits, - and _."""
    return NAME_PATTERN.fullmatch(name) is not None


def sha256(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class FileEntry:
    """Size and checksum of one data file."""

    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What an index is and how to check its files."""

    name: str
    provider: str
    model: str
    dimension: int
    vectors: int
    documents: int
    created_at: str
    updated_at: str
    files: dict[str, FileEntry]
    chunk_size: int = 0
    chunk_overlap: int = 0
    format: str = field(default=FORMAT)
    version: int = field(default=VERSION)

    def to_json(self) -> bytes:
        """The manifest.json bytes."""
        data = asdict(self)
        data["embedding"] = {
            "provider": data.pop("provider"),
            "model": data.pop("model"),
            "dimension": data.pop("dimension"),
        }
        data["chunking"] = {"size": data.pop("chunk_size"), "overlap": data.pop("chunk_overlap")}
        return json.dumps(data, indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        """Parse and check manifest.json; FormatError says what is wrong."""
        if len(raw) > MAX_MANIFEST_BYTES:
            raise FormatError(N_("manifest.json is larger than any real manifest"))
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise FormatError(N_("manifest.json is not valid JSON")) from None
        if not isinstance(data, dict):
            raise FormatError(N_("manifest.json does not hold an object"))
        if data.get("format") != FORMAT:
            raise FormatError(N_("manifest.json is not a relaydesk knowledge index manifest"))
        if data.get("version") != VERSION:
            raise FormatError(
                f"the index format version {data.get('version')!r} is not supported "
                f"(this relaydesk reads version {VERSION})"
            )
        embedding = _object(data, "embedding")
        chunking = data.get("chunking") or {}
        files = _object(data, "files")
        if sorted(files) != sorted(DATA_FILES):
            raise FormatError(f"the manifest must list exactly {' and '.join(DATA_FILES)}")
        entries = {}
        for name in DATA_FILES:
            entry = files[name]
            if not isinstance(entry, dict):
                raise FormatError(f"the manifest entry of {name} is not an object")
            size = _int(entry, "size", f"files.{name}.size")
            digest = entry.get("sha256")
            if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
                raise FormatError(f"the manifest has no valid SHA-256 for {name}")
            entries[name] = FileEntry(size, digest)
        name = _str(data, "name")
        if not valid_name(name):
            raise FormatError(f"the manifest names the index '{name[:70]}', which is not valid")
        dimension = _int(embedding, "dimension", "embedding.dimension")
        if not 1 <= dimension <= 65536:
            raise FormatError(f"embedding.dimension {dimension} is out of range")
        return cls(
            name=name,
            provider=_str(embedding, "provider"),
            model=_str(embedding, "model"),
            dimension=dimension,
            vectors=_int(data, "vectors", "vectors"),
            documents=_int(data, "documents", "documents"),
            created_at=_str(data, "created_at"),
            updated_at=_str(data, "updated_at"),
            files=entries,
            chunk_size=_int(chunking, "size", "chunking.size") if chunking else 0,
            chunk_overlap=_int(chunking, "overlap", "chunking.overlap") if chunking else 0,
        )


def check_file(manifest: Manifest, name: str, data: bytes) -> None:
    """FormatError unless `data` has the size and SHA-256 the manifest lists for `name`."""
    entry = manifest.files[name]
    if len(data) != entry.size:
        raise FormatError(
            f"{name} has {len(data)} bytes but the manifest says {entry.size} "
            "(the file is damaged or was changed)"
        )
    if sha256(data) != entry.sha256:
        raise FormatError(
            f"the checksum of {name} does not match the manifest (the file is damaged or was "
            "changed)"
        )


def check_faiss_header(data: bytes, manifest: Manifest) -> None:
    """FormatError unless `data` is a flat inner-product index of the manifest's shape.

    Done before faiss reads the bytes: its reader trusts the sizes written in the file.
    """
    if len(data) < _FLAT_HEADER.size:
        raise FormatError(f"{INDEX_FILE} is too short to be a FAISS index")
    fourcc, dimension, ntotal, _, _, _, metric, floats = _FLAT_HEADER.unpack_from(data)
    if fourcc != _FLAT_IP_FOURCC or metric != METRIC_INNER_PRODUCT:
        raise FormatError(f"{INDEX_FILE} is not a flat inner-product FAISS index")
    if dimension != manifest.dimension:
        raise FormatError(
            f"{INDEX_FILE} holds vectors of {dimension} dimensions but the manifest says "
            f"{manifest.dimension}"
        )
    if ntotal != manifest.vectors:
        raise FormatError(
            f"{INDEX_FILE} holds {ntotal} vectors but the manifest says {manifest.vectors}"
        )
    if floats != ntotal * dimension or len(data) != _FLAT_HEADER.size + 4 * floats:
        raise FormatError(f"{INDEX_FILE} is truncated or has extra bytes")


def parse_chunks(data: bytes, manifest: Manifest) -> list[dict[str, Any]]:
    """The chunk records of chunks.json, checked field by field against the manifest."""
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise FormatError(f"{CHUNKS_FILE} is not valid JSON") from None
    chunks = parsed.get("chunks") if isinstance(parsed, dict) else None
    if not isinstance(chunks, list):
        raise FormatError(f"{CHUNKS_FILE} has no list of chunks")
    if len(chunks) != manifest.vectors:
        raise FormatError(
            f"{CHUNKS_FILE} describes {len(chunks)} chunks but the manifest says "
            f"{manifest.vectors} vectors"
        )
    for i, chunk in enumerate(chunks):
        if not isinstance(chunk, dict) or not all(
            isinstance(chunk.get(key), str) for key in _CHUNK_FIELDS
        ):
            raise FormatError(f"chunk {i} of {CHUNKS_FILE} lacks a field or has a wrong type")
        if chunk.get("published") is not None and not isinstance(chunk["published"], str):
            raise FormatError(f"chunk {i} of {CHUNKS_FILE} has an invalid published date")
    return chunks


def _object(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise FormatError(f"the manifest has no '{key}' object")
    return value


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise FormatError(f"the manifest has no '{key}' text")
    return value


def _int(data: dict[str, Any], key: str, label: str) -> int:
    value = data.get(key)
    # bool is an int in Python; true is not a count.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FormatError(f"the manifest has no valid '{label}' number")
    return value
