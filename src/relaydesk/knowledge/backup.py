"""Export an index as a ZIP and import one back, refusing anything that is not exactly that.

A backup holds the index's three files and nothing else. An uploaded ZIP is untrusted:
its size is capped before it is opened, every member is checked before a byte is
unpacked, unpacking counts the bytes it really produces (declared sizes are the
uploader's word), the result is loaded like any index, and only then does it replace
the current one. Any refusal leaves the indexes as they were.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from relaydesk.core import clock, ondisk
from relaydesk.core.errors import Invalid
from relaydesk.core.i18n import N_
from relaydesk.knowledge import disk, store
from relaydesk.knowledge.embeddings import Embedder, describe_embedder
from relaydesk.knowledge.manifest import (
    CHUNKS_FILE,
    INDEX_FILE,
    MANIFEST_FILE,
    FormatError,
    Manifest,
)

MAX_IMPORT_BYTES = 250 * 1024 * 1024
# Vectors hardly compress and JSON text about 4:1; 100:1 is only reached by padding.
MAX_RATIO = 100
RATIO_FLOOR = 1 << 20  # small members may compress well without being a threat
BLOCK = 1 << 20
# A backup's table of contents is three entries, a few hundred bytes. zipfile reads the
# whole table into memory before anything can be checked, so its size is checked first.
MAX_ENTRIES = 64
MAX_DIRECTORY_BYTES = 64 * 1024
MEMBERS = (MANIFEST_FILE, CHUNKS_FILE, INDEX_FILE)
_DRIVE = re.compile(r"[A-Za-z]:")


_REFUSED = "This backup was refused: "


class BackupRefused(Invalid):
    """An uploaded backup was not imported; the message says why in plain words.

    Given `params`, the message is a whole N_-marked template that starts with "This
    backup was refused: " (one catalog entry per reason); given only a text, that text
    is the reason (e.g. a FormatError's) and the prefix is added.
    """

    code = "backup_refused"

    def __init__(self, message: str, /, *, params: Mapping[str, Any] | None = None) -> None:
        if params is None:
            message, params = N_("This backup was refused: %(reason)s"), {"reason": message}
        super().__init__(message, params=params)
        self.reason = self.message.removeprefix(_REFUSED)


class BackupTooLarge(BackupRefused):
    """The upload is over the size limit."""

    status_code = 413


# --- Export ------------------------------------------------------------------------------


class ExportedZip:
    """A finished backup in an anonymous temporary file; iterate to stream it once."""

    def __init__(self, filename: str, file: IO[bytes], size: int) -> None:
        self.filename = filename
        self.size = size
        self._file = file

    def __iter__(self) -> Iterator[bytes]:
        try:
            self._file.seek(0)
            while block := self._file.read(BLOCK):
                yield block
        finally:
            self.close()

    def close(self) -> None:
        """Free the temporary file (also done when iteration ends)."""
        self._file.close()


def export_zip(root: Path, name: str) -> ExportedZip:
    """A ZIP of the index `name` (its manifest, vectors and chunks), checked as it is written.

    The archive is complete before this returns, so a missing or damaged index is an
    exception here rather than a broken download.
    """
    path = store.index_path(root, name)
    if not path.is_dir():
        raise store.IndexNotFound(N_("There is no index named '%(name)s'"), params={"name": name})
    for _ in range(3):
        try:
            files = _open_snapshot(path)
            break
        except FileNotFoundError:
            continue  # swapped by a build between opening the folder and its files
    else:
        raise store.IndexDamaged(N_("The index '%(name)s' is missing files"), params={"name": name})
    out = tempfile.TemporaryFile(dir=root)  # noqa: SIM115 (ExportedZip closes it)
    try:
        with files[MANIFEST_FILE] as handle:
            raw_manifest = handle.read(1 << 20)
        try:
            manifest = Manifest.from_json(raw_manifest)
        except FormatError as exc:
            raise store.IndexDamaged(
                N_("The index '%(name)s' is damaged: %(problem)s"),
                params={"name": name, "problem": str(exc)},
            ) from None
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr(_member(MANIFEST_FILE, zipfile.ZIP_DEFLATED), raw_manifest)
            # Vectors barely compress: storing them saves seconds for ~5% of size.
            for member, method in (
                (CHUNKS_FILE, zipfile.ZIP_DEFLATED),
                (INDEX_FILE, zipfile.ZIP_STORED),
            ):
                with files[member] as source:
                    _copy_checked(source, archive, member, method, manifest)
        size = out.tell()
    except BaseException:
        out.close()
        for handle in files.values():
            handle.close()
        raise
    stamp = clock.now().strftime("%Y%m%d-%H%M%S")
    return ExportedZip(f"relaydesk-index-{name}-{stamp}.zip", out, size)


def _copy_checked(
    source: IO[bytes], archive: zipfile.ZipFile, member: str, method: int, manifest: Manifest
) -> None:
    """Stream a file into the archive; IndexDamaged unless it matches its manifest entry."""
    entry = manifest.files[member]
    digest = hashlib.sha256()
    size = 0
    info = _member(member, method)
    with archive.open(info, "w", force_zip64=entry.size >= zipfile.ZIP64_LIMIT) as dest:
        while block := source.read(BLOCK):
            digest.update(block)
            size += len(block)
            dest.write(block)
    if size != entry.size or digest.hexdigest() != entry.sha256:
        raise store.IndexDamaged(
            N_("The index '%(name)s' is damaged: %(file)s does not match its manifest"),
            params={"name": manifest.name, "file": member},
        )


def _open_snapshot(path: Path) -> dict[str, IO[bytes]]:
    """The three files of one version of the directory, open (a swap cannot mix versions)."""
    dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    handles: dict[str, IO[bytes]] = {}
    try:
        for member in MEMBERS:
            fd = os.open(member, os.O_RDONLY, dir_fd=dir_fd)
            handles[member] = os.fdopen(fd, "rb")
    except BaseException:
        for handle in handles.values():
            handle.close()
        raise
    finally:
        os.close(dir_fd)
    return handles


def _member(name: str, method: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=clock.now().timetuple()[:6])
    info.compress_type = method
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    return info


# --- Import ------------------------------------------------------------------------------


def import_zip(
    root: Path,
    fileobj: IO[bytes],
    name: str | None = None,
    *,
    max_bytes: int = MAX_IMPORT_BYTES,
    max_unpacked: int | None = None,
    embedder: Embedder | None = None,
    activate: bool = False,
) -> Manifest:
    """Restore an index from a backup ZIP, under `name` or the name it was exported with.

    BackupRefused explains any refusal: too large, not a ZIP, paths leaving the folder,
    links, unknown files, a missing manifest, wrong sizes or checksums, vectors that do
    not match the manifest, a zip bomb, or (when `embedder` is given) vectors from
    another embedding model. An index of the same name is replaced only by a backup
    that passed every check; `activate` then makes it the active index.
    """
    if name is not None:
        store.check_name(name)
    limit = max_unpacked if max_unpacked is not None else 4 * max_bytes
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=root) as upload:
        _copy_limited(fileobj, upload, max_bytes)
        _check_directory_size(upload)
        upload.seek(0)
        try:
            archive = zipfile.ZipFile(upload)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
            raise BackupRefused(
                N_("This backup was refused: the file is not a ZIP archive"), params={}
            ) from None
        with archive, disk.work_dir(root, "import") as staged:
            members = _checked_members(archive.infolist(), limit)
            unpacked = 0
            for info in members:
                unpacked += _extract(archive, info, staged / info.filename, limit - unpacked)
            try:
                loaded = store.read_directory(staged, "import")
            except FormatError as exc:
                raise BackupRefused(str(exc)) from None
            manifest = loaded.manifest
            del loaded  # the vectors were only read to prove FAISS can load them
            if embedder is not None:
                _check_embedder(manifest, embedder)
            target = name or manifest.name
            if target != manifest.name:
                manifest = replace(manifest, name=target)
                (staged / MANIFEST_FILE).unlink()
                ondisk.write_new(staged / MANIFEST_FILE, manifest.to_json())
            disk.swap_in(root, target, staged)
    if activate:
        store.activate(root, target)
    return manifest


def _copy_limited(source: IO[bytes], dest: IO[bytes], max_bytes: int) -> None:
    copied = 0
    while block := source.read(BLOCK):
        copied += len(block)
        if copied > max_bytes:
            raise BackupTooLarge(
                N_("This backup was refused: the file is larger than %(size)s"),
                params={"size": _size(max_bytes)},
            )
        dest.write(block)
    if copied == 0:
        raise BackupRefused(N_("This backup was refused: the file is empty"), params={})


def _check_directory_size(upload: IO[bytes]) -> None:
    """Refuse a ZIP whose table of contents is far larger than a backup's, unread."""
    size = upload.seek(0, os.SEEK_END)
    window = min(size, 22 + 0xFFFF)  # the end record, after at most a 64 kB comment
    upload.seek(size - window)
    tail = upload.read(window)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        raise BackupRefused(N_("This backup was refused: the file is not a ZIP archive"), params={})
    entries, directory = struct.unpack_from("<HI", tail, at + 10)
    end_record = size - window + at
    if (entries == 0xFFFF or directory == 0xFFFFFFFF) and end_record >= 20:
        # ZIP64: a locator just before the end record points at the 64-bit counts.
        upload.seek(end_record - 20)
        locator = upload.read(20)
        if locator[:4] == b"PK\x06\x07":
            upload.seek(struct.unpack_from("<Q", locator, 8)[0])
            record = upload.read(56)
            if len(record) == 56 and record[:4] == b"PK\x06\x06":
                entries, directory = struct.unpack_from("<QQ", record, 32)
    if entries > MAX_ENTRIES or directory > MAX_DIRECTORY_BYTES:
        raise BackupRefused(
            N_(
                "This backup was refused: "
                "it lists %(entries)s entries; a backup holds only %(files)s"
            ),
            params={"entries": entries, "files": ", ".join(MEMBERS)},
        )


def _checked_members(infos: list[zipfile.ZipInfo], limit: int) -> list[zipfile.ZipInfo]:
    """The three expected members, or BackupRefused naming the first thing that is wrong."""
    found: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        path = info.orig_filename
        shown = repr(path[:80])
        if "\\" in path:
            raise BackupRefused(
                N_("This backup was refused: it contains a path with backslashes (%(path)s)"),
                params={"path": shown},
            )
        if path.startswith("/") or _DRIVE.match(path):
            raise BackupRefused(
                N_("This backup was refused: it contains an absolute path (%(path)s)"),
                params={"path": shown},
            )
        if ".." in path.split("/"):
            raise BackupRefused(
                N_(
                    "This backup was refused: "
                    "it contains a path that leads out of its folder (%(path)s)"
                ),
                params={"path": shown},
            )
        if "\x00" in path or path != info.filename:
            raise BackupRefused(
                N_(
                    "This backup was refused: "
                    "it contains a file name that cannot be used (%(path)s)"
                ),
                params={"path": shown},
            )
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            raise BackupRefused(
                N_("This backup was refused: it contains a symbolic link (%(path)s)"),
                params={"path": shown},
            )
        if info.is_dir() or kind == stat.S_IFDIR:
            raise BackupRefused(
                N_(
                    "This backup was refused: "
                    "it contains a folder (%(path)s); a backup holds only files"
                ),
                params={"path": shown},
            )
        if kind not in (0, stat.S_IFREG):
            raise BackupRefused(
                N_("This backup was refused: it contains a special file (%(path)s)"),
                params={"path": shown},
            )
        if path not in MEMBERS:
            raise BackupRefused(
                N_(
                    "This backup was refused: it contains an unknown file (%(path)s); "
                    "a backup holds only %(files)s"
                ),
                params={"path": shown, "files": ", ".join(MEMBERS)},
            )
        if path in found:
            raise BackupRefused(
                N_("This backup was refused: it contains %(path)s twice"), params={"path": path}
            )
        if info.flag_bits & 0x1:
            raise BackupRefused(
                N_("This backup was refused: %(path)s is encrypted"), params={"path": path}
            )
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise BackupRefused(
                N_(
                    "This backup was refused: "
                    "%(path)s uses a compression method relaydesk does not read"
                ),
                params={"path": path},
            )
        if _bomb(info.file_size, info.compress_size):
            raise BackupRefused(
                N_(
                    "This backup was refused: "
                    "%(path)s expands far more than real index files (a zip bomb)"
                ),
                params={"path": path},
            )
        found[path] = info
    if MANIFEST_FILE not in found:
        raise BackupRefused(
            N_("This backup was refused: it has no %(file)s; it is not a relaydesk index backup"),
            params={"file": MANIFEST_FILE},
        )
    missing = [m for m in MEMBERS if m not in found]
    if missing:
        raise BackupRefused(
            N_("This backup was refused: it lacks %(files)s"),
            params={"files": " and ".join(missing)},
        )
    if sum(info.file_size for info in found.values()) > limit:
        raise BackupRefused(
            N_("This backup was refused: it would unpack to more than %(size)s"),
            params={"size": _size(limit)},
        )
    return [found[m] for m in MEMBERS]


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, budget: int) -> int:
    """Unpack one member, counting the bytes really produced; how many there were."""
    written = 0
    try:
        with archive.open(info) as source, dest.open("xb") as out:
            while block := source.read(BLOCK):
                written += len(block)
                if written > info.file_size:
                    raise BackupRefused(
                        N_("This backup was refused: %(path)s is larger than the archive declares"),
                        params={"path": info.filename},
                    )
                if written > budget:
                    raise BackupRefused(
                        N_(
                            "This backup was refused: it would unpack to more than the allowed size"
                        ),
                        params={},
                    )
                if _bomb(written, info.compress_size):
                    raise BackupRefused(
                        N_(
                            "This backup was refused: %(path)s expands far more than real index "
                            "files (a zip bomb)"
                        ),
                        params={"path": info.filename},
                    )
                out.write(block)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise BackupRefused(
            N_("This backup was refused: %(path)s is damaged inside the archive (%(error)s)"),
            params={"path": info.filename, "error": str(exc)},
        ) from None
    if written != info.file_size:
        raise BackupRefused(
            N_("This backup was refused: %(path)s is shorter than the archive declares"),
            params={"path": info.filename},
        )
    return written


def _bomb(unpacked: int, packed: int) -> bool:
    return unpacked > RATIO_FLOOR and unpacked > MAX_RATIO * max(packed, 1)


def _check_embedder(manifest: Manifest, embedder: Embedder) -> None:
    if embedder.model == manifest.model and embedder.dimension == manifest.dimension:
        return
    raise BackupRefused(
        N_(
            "This backup was refused: its index was built with %(built_with)s "
            "(%(built_dimension)s dimensions) but the configured embedder is %(embedder)s "
            "(%(dimension)s dimensions)"
        ),
        params={
            "built_with": f"{manifest.provider} · {manifest.model}",
            "built_dimension": manifest.dimension,
            "embedder": describe_embedder(embedder),
            "dimension": embedder.dimension,
        },
    )


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB" if n >= 1024 * 1024 else f"{n} bytes"
