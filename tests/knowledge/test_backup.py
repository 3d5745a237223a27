"""Index backups: an export imports back identically; anything suspicious is refused."""

from __future__ import annotations

import io
import json
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import pytest

from relaydesk.knowledge import backup, indexing, search, store
from relaydesk.knowledge.backup import BackupRefused, BackupTooLarge
from relaydesk.knowledge.embeddings import LocalEmbedder
from relaydesk.knowledge.manifest import sha256
from tests.knowledge.conftest import DOCS, CountingEmbedder

QUESTIONS = [
    "When does the new bakery shop open?",
    "What was the score of the derby?",
    "Did the central bank change the interest rate?",
    "Are the ferries running on Thursday?",
]


def answers(index: store.LoadedIndex, embedder: LocalEmbedder) -> list[list[tuple[str, float]]]:
    return [
        [(h.chunk.id, round(h.score, 6)) for h in search.search_text(index, embedder, q, 4, -1)]
        for q in QUESTIONS
    ]


def exported(root: Path, name: str = "news") -> bytes:
    return b"".join(backup.export_zip(root, name))


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def rezip(files: dict[str, bytes], *extra: tuple[zipfile.ZipInfo | str, bytes]) -> bytes:
    """A ZIP of `files` plus hand-made members."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        for info, data in extra:
            archive.writestr(info, data)
    return out.getvalue()


def with_manifest(files: dict[str, bytes], **changes: object) -> dict[str, bytes]:
    """The files with manifest.json rewritten: listed sizes and checksums made to match."""
    manifest = json.loads(files["manifest.json"])
    for name in ("index.faiss", "chunks.json"):
        manifest["files"][name] = {"size": len(files[name]), "sha256": sha256(files[name])}
    for key, value in changes.items():
        if key == "dimension":
            manifest["embedding"]["dimension"] = value
        else:
            manifest[key] = value
    return {**files, "manifest.json": json.dumps(manifest).encode()}


@pytest.fixture
def news(root: Path, local_embedder: LocalEmbedder) -> bytes:
    """The documents indexed as the active 'news'; its export."""
    indexing.build(root, "news", DOCS, local_embedder)
    store.activate(root, "news")
    return exported(root)


def test_export_then_import_gives_identical_answers(
    root: Path, local_embedder: LocalEmbedder, news: bytes
) -> None:
    assert sorted(members(news)) == ["chunks.json", "index.faiss", "manifest.json"]
    manifest = json.loads(members(news)["manifest.json"])
    assert manifest["embedding"] == {
        "provider": "local",
        "model": "all-MiniLM-L6-v2",
        "dimension": 384,
    }
    assert manifest["files"]["index.faiss"]["sha256"] == sha256(members(news)["index.faiss"])

    restored = backup.import_zip(root, io.BytesIO(news), "restored", embedder=local_embedder)
    assert restored.name == "restored" and restored.vectors == 4
    original = answers(store.load(root, "news"), local_embedder)
    assert answers(store.load(root, "restored"), local_embedder) == original
    # Its own export names it by its new name.
    assert json.loads(members(exported(root, "restored"))["manifest.json"])["name"] == "restored"


def test_importing_over_an_index_replaces_it_and_can_activate(
    root: Path, local_embedder: LocalEmbedder, news: bytes
) -> None:
    indexing.build(root, "news", DOCS[:1], local_embedder)
    assert store.load(root, "news").vectors == 1
    manifest = backup.import_zip(root, io.BytesIO(news), activate=True)
    assert manifest.name == "news"
    assert store.load(root, "news").vectors == 4
    assert store.active_name(root) == "news"


def test_export_of_a_damaged_index_fails_before_anything_is_sent(root: Path, news: bytes) -> None:
    (root / "news" / "index.faiss").write_bytes(b"junk")
    with pytest.raises(store.IndexDamaged, match=r"index\.faiss"):
        backup.export_zip(root, "news")
    with pytest.raises(store.IndexNotFound):
        backup.export_zip(root, "missing")


def _symlink(files: dict[str, bytes]) -> bytes:
    link = zipfile.ZipInfo("index.faiss")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    rest = {k: v for k, v in files.items() if k != "index.faiss"}
    return rezip(rest, (link, b"/etc/passwd"))


def _bad_dimension(files: dict[str, bytes]) -> bytes:
    # A consistent archive whose FAISS file holds 8-dimensional vectors.
    small = faiss.IndexFlatIP(8)
    small.add(np.eye(8, dtype=np.float32)[:4])
    return rezip(with_manifest({**files, "index.faiss": faiss.serialize_index(small).tobytes()}))


def _flipped_byte(files: dict[str, bytes]) -> bytes:
    data = bytearray(files["chunks.json"])
    data[data.index(b"bakery")] = ord("B")
    return rezip({**files, "chunks.json": bytes(data)})


def _bomb(files: dict[str, bytes]) -> bytes:
    return rezip({**files, "index.faiss": bytes(64 * 1024 * 1024)})  # 64 MB of zeros


def _lying_bomb(files: dict[str, bytes]) -> bytes:
    """The bomb with its sizes rewritten to look harmless (900 kB, ratio ~14)."""
    data = bytearray(_bomb(files))
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = -1
        while (at := data.find(signature, at + 1)) >= 0:
            name_at = at + (30 if signature == b"PK\x03\x04" else 46)
            if data[name_at : name_at + 11] == b"index.faiss":
                data[at + offset : at + offset + 4] = (900_000).to_bytes(4, "little")
    return bytes(data)


BAD_ARCHIVES: dict[str, tuple[Callable[[dict[str, bytes]], bytes], str]] = {
    "traversal": (lambda f: rezip(f, ("../evil.json", b"{}")), "leads out of its folder"),
    "absolute path": (lambda f: rezip(f, ("/etc/cron.d/x", b"x")), "absolute path"),
    "backslash": (lambda f: rezip(f, ("..\\evil.json", b"{}")), "backslashes"),
    "symlink": (_symlink, "symbolic link"),
    "folder": (lambda f: rezip(f, (zipfile.ZipInfo("extra/"), b"")), "folder"),
    "unknown file": (lambda f: rezip(f, ("notes.txt", b"hi")), "unknown file"),
    "pickle": (lambda f: rezip(f, ("chunks.pkl", b"\x80\x04N.")), "unknown file"),
    "no manifest": (
        lambda f: rezip({k: v for k, v in f.items() if k != "manifest.json"}),
        "no manifest.json",
    ),
    "no vectors": (
        lambda f: rezip({k: v for k, v in f.items() if k != "index.faiss"}),
        "lacks index.faiss",
    ),
    "bad checksum": (_flipped_byte, "checksum of chunks.json"),
    "size mismatch": (lambda f: rezip({**f, "chunks.json": f["chunks.json"] + b" "}), "bytes"),
    "dimension mismatch": (_bad_dimension, "8 dimensions but the manifest says 384"),
    "vector count": (
        lambda f: rezip(with_manifest(f, vectors=5)),
        "holds 4 vectors but the manifest says 5",
    ),
    "zip bomb": (_bomb, "zip bomb"),
    "lying sizes": (_lying_bomb, "damaged inside the archive"),
    "not a manifest": (
        lambda f: rezip({**f, "manifest.json": b"[1, 2]"}),
        "does not hold an object",
    ),
    "garbage": (lambda f: b"this is not a zip file at all " * 100, "not a ZIP archive"),
    "truncated zip": (lambda f: rezip(f)[:-200], "not a ZIP archive"),
    "empty": (lambda f: b"", "empty"),
    "many entries": (
        lambda f: rezip(f, *((f"x{i}", b"") for i in range(1000))),
        "lists 1003 entries",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ARCHIVES))
def test_a_bad_archive_is_refused_and_the_old_index_still_answers(
    root: Path, local_embedder: LocalEmbedder, news: bytes, case: str
) -> None:
    make, reason = BAD_ARCHIVES[case]
    before = answers(store.load(root, "news"), local_embedder)
    with pytest.raises(BackupRefused) as refused:
        backup.import_zip(root, io.BytesIO(make(members(news))), "news")
    assert reason in refused.value.message
    assert refused.value.message.startswith("This backup was refused: ")
    assert answers(store.load(root, "news"), local_embedder) == before
    assert store.active_name(root) == "news"
    assert [p.name for p in root.iterdir() if p.name.startswith((".import", ".old", ".tmp"))] == []
    assert {i.name for i in store.list_indexes(root)} == {"news"}


def test_an_upload_over_the_limit_is_refused_before_it_is_opened(root: Path, news: bytes) -> None:
    with pytest.raises(BackupTooLarge, match="larger than 1000 bytes") as refused:
        backup.import_zip(root, io.BytesIO(news), "other", max_bytes=1000)
    assert refused.value.status_code == 413
    assert [i.name for i in store.list_indexes(root)] == ["news"]


def test_an_archive_that_unpacks_too_large_is_refused(root: Path, news: bytes) -> None:
    with pytest.raises(BackupRefused, match="unpack to more than"):
        backup.import_zip(root, io.BytesIO(news), "other", max_unpacked=2000)


def test_a_backup_from_another_embedding_model_is_refused_when_checked(
    root: Path, local_embedder: LocalEmbedder, news: bytes
) -> None:
    other = CountingEmbedder(local_embedder, model="text-embedding-3-small")
    with pytest.raises(BackupRefused, match=r"all-MiniLM-L6-v2.*text-embedding-3-small"):
        backup.import_zip(root, io.BytesIO(news), "other", embedder=other)
    assert [i.name for i in store.list_indexes(root)] == ["news"]
