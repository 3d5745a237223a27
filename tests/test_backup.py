"""Backup and restore: the archive, every refusal, the schedule, and a real round trip.

The refusals and the schedule run in this process on their own data directories (and
their own databases); the round trip drives real `relaydesk serve` processes and the
`relaydesk backup` / `restore` commands on the suite's database.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from relaydesk import migrations
from relaydesk.backups import database, reader, tasks, writer
from relaydesk.backups.manifest import (
    MANIFEST,
    BackupError,
    Manifest,
    RestoreRefused,
    unusable_name,
)
from relaydesk.channels.sandbox.runtime import DB_NAME
from relaydesk.core.config import Settings, get_settings
from relaydesk.core.db import make_engine
from relaydesk.news.files import Article, content_hash, write_category
from tests.conftest import BACKEND, FrozenClock
from tests.processes import CLI, Deployment, database_url, wait_until

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f80f0000010101001be5d7c60000000049454e44ae426082"
)
SECRET = "a-secret-key-for-the-backup-tests-0123456789abcdef"
postgresql_only = pytest.mark.skipif(
    BACKEND != "postgresql", reason="a PostgreSQL target database (the suite's cluster)"
)


# --- An installation on disk, made in this process ------------------------------------------


@dataclass
class Installation:
    settings: Settings
    data_dir: Path


def install(root: Path, *, sqlite: bool = True, key_in_file: bool = True) -> Installation:
    """A migrated database, a secret key, a news category, a media file and some clutter."""
    data = root / "data"
    data.mkdir(parents=True)
    if key_in_file:
        (data / ".secret_key").write_text(SECRET)
    url = None if sqlite else database_url(data)
    settings = Settings(data_dir=data, database_url=url, secret_key=SECRET)  # type: ignore[call-arg]
    engine = make_engine(settings.sqlalchemy_url)
    try:
        migrations.upgrade(engine=engine)
    finally:
        engine.dispose()
    text = "Otwarto nowy most na Wiśle; ruch ruszy w poniedziałek."
    article = Article(
        url="https://example.com/most",
        title="Nowy most",
        text=text,
        source="https://example.com/rss",
        published="2026-01-02",
        fetched_at="2026-01-02T10:00:00+00:00",
        content_hash=content_hash(text),
    )
    write_category(data / "news", "lokalne", [article])
    media = data / "media" / "ab"
    media.mkdir(parents=True)
    (media / ("ab" + "0" * 62)).write_bytes(PNG)
    (data / "voicebot" / "archives").mkdir(parents=True)
    (data / "voicebot" / "archives" / "2026-01.json").write_text('{"calls": []}\n')
    (data / "spool").mkdir()
    (data / "spool" / "dead.jsonl").write_text('{"id": "0123456789ab", "kind": "inbound"}\n')
    (data / "indexes" / "pomoc").mkdir(parents=True)
    (data / "indexes" / "pomoc" / "chunks.json").write_text("[]\n")
    (data / "indexes" / ".build-0123abcd").mkdir()
    (data / "indexes" / ".build-0123abcd" / "chunks.json").write_text("[]\n")
    (data / "news" / "outside").symlink_to("/etc/hostname")
    (data / "queue.db").write_bytes(b"transient")
    return Installation(settings, data)


def target(root: Path, *, url: str | None = None, secret_key: str | None = None) -> Settings:
    """The configuration a restore runs with: a data directory that does not exist yet."""
    root.mkdir(parents=True, exist_ok=True)
    return Settings(data_dir=root / "restored", database_url=url, secret_key=secret_key)  # type: ignore[call-arg]


def tree(folder: Path) -> dict[str, str]:
    """SHA-256 of every regular file under `folder`, by relative path."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


@pytest.fixture(scope="module")
def sqlite_backup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Installation]]:
    """One SQLite installation and its archive, shared by the refusal tests (read only)."""
    root = tmp_path_factory.mktemp("sqlite-install")
    made = install(root)
    archive = root / "backup.tar.gz"
    writer.write_backup(archive, made.settings)
    yield archive, made


# --- Rewriting archives ---------------------------------------------------------------------

Members = list[tuple[tarfile.TarInfo, bytes]]


def rebuild(source: Path, dest: Path, edit: Callable[[Members], None]) -> Path:
    """A copy of `source` with its members changed by `edit` (a hand-made archive)."""
    with tarfile.open(source, "r:gz") as tar:
        members: Members = []
        for info in tar:
            handle = tar.extractfile(info) if info.isreg() else None
            members.append((info, handle.read() if handle else b""))
    edit(members)
    with tarfile.open(dest, "w:gz") as out:
        for info, data in members:
            if info.isreg():
                info.size = len(data)
                out.addfile(info, io.BytesIO(data))
            else:
                out.addfile(info)
    return dest


def extra(
    name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, link: str = ""
) -> Callable[[Members], None]:
    def edit(members: Members) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = link
        members.insert(1, (info, data))

    return edit


def edit_manifest(change: Callable[[dict], None]) -> Callable[[Members], None]:
    def edit(members: Members) -> None:
        for i, (info, data) in enumerate(members):
            if info.name == MANIFEST:
                manifest = json.loads(data)
                change(manifest)
                members[i] = (info, json.dumps(manifest).encode())

    return edit


def refused(archive: Path, settings: Settings, *words: str) -> str:
    """Restore must refuse with a message holding `words` and leave DATA_DIR untouched."""
    before = sorted(p.name for p in settings.data_dir.parent.iterdir())
    existed = settings.data_dir.exists()
    with pytest.raises(RestoreRefused) as caught:
        reader.restore(archive, settings)
    message = caught.value.message
    for word in words:
        assert word in message, message
    after = sorted(p.name for p in settings.data_dir.parent.iterdir())
    assert after == before, "a refused restore left files behind"
    if existed:
        assert settings.data_dir.exists()
    return message


# --- The archive ----------------------------------------------------------------------------


def test_the_archive_holds_a_manifest_with_every_file_and_its_checksum(
    sqlite_backup: tuple[Path, Installation],
) -> None:
    archive, made = sqlite_backup
    with tarfile.open(archive, "r:gz") as tar:
        names = tar.getnames()
        handle = tar.extractfile(MANIFEST)
        assert handle is not None
        manifest = Manifest.from_json(handle.read())
        contents = {
            m.name: hashlib.sha256(tar.extractfile(m).read()).hexdigest()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isreg() and m.name != MANIFEST
        }
    assert names[-1] == MANIFEST
    assert manifest.database_kind == "sqlite" and manifest.database_file == "database/app.db"
    assert manifest.alembic_revision is not None
    assert manifest.secret_key == "archive"
    listed = {entry.path: entry.sha256 for entry in manifest.files}
    assert listed == contents
    on_disk = tree(made.data_dir)
    for name in ("news/lokalne.txt", "news/lokalne.json", "media/ab/ab" + "0" * 62, ".secret_key"):
        assert listed[f"data/{name}"] == on_disk[name]
    assert "data/voicebot/archives/2026-01.json" in listed
    assert "data/spool/dead.jsonl" in listed and "data/indexes/pomoc/chunks.json" in listed
    left_out = {item.path: item.reason for item in manifest.skipped}
    assert "unfinished" in left_out["indexes/.build-0123abcd"]
    assert "symbolic link" in left_out["news/outside"]
    assert "task queue" in left_out["queue.db"]
    assert not any(name.startswith("data/queue") or name.endswith("-wal") for name in listed)


def test_the_sandbox_constant_is_the_emulators_own() -> None:
    assert writer.SANDBOX_DB == DB_NAME


def test_a_backup_needs_a_new_tar_gz_name(
    tmp_path: Path, sqlite_backup: tuple[Path, Installation]
) -> None:
    archive, made = sqlite_backup
    for name in ("backup.zip", "backup.tar", ".tar.gz"):
        with pytest.raises(BackupError, match=r"must end in \.tar\.gz"):
            writer.write_backup(tmp_path / name, made.settings)
    with pytest.raises(BackupError, match="already exists"):
        writer.write_backup(archive, made.settings)
    (tmp_path / "busy.tar.gz.partial").write_bytes(b"")
    with pytest.raises(BackupError, match="another backup"):
        writer.write_backup(tmp_path / "busy.tar.gz", made.settings)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy.tar.gz.partial"]


def test_member_names_that_could_leave_the_folder_are_unusable() -> None:
    assert unusable_name("data/media/ab/abc") is None
    for name in ("/etc/passwd", "data/../../x", "data//x", "./data/x", "data/a\\b", "data/\x00"):
        assert unusable_name(name) is not None, name


def test_the_postgresql_password_goes_to_pg_dump_in_the_environment_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(database, "pg_tool", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(database, "_run", lambda command, env, *_: seen.append((command, env)))
    url = "postgresql+psycopg://relay:s3cr%40t@db.internal:5433/relaydesk?sslmode=require"
    database.pg_dump(url, tmp_path / "x.dump")
    database.pg_restore(url, tmp_path / "x.dump")
    for command, env in seen:
        line = " ".join(command)
        assert "s3cr" not in line, line
        assert env["PGPASSWORD"] == "s3cr@t"
        assert "--no-owner" in command and "--no-privileges" in command
        for part in ("host=db.internal", "port=5433", "user=relay", "sslmode=require"):
            assert part in line, line
    assert "--format=custom" in seen[0][0]
    assert "--single-transaction" in seen[1][0]


# --- Restore ---------------------------------------------------------------------------------


def test_restore_puts_every_file_back_and_the_database_opens(
    tmp_path: Path, sqlite_backup: tuple[Path, Installation]
) -> None:
    archive, made = sqlite_backup
    settings = target(tmp_path)
    report = reader.restore(archive, settings)
    restored = tree(settings.data_dir)
    original = tree(made.data_dir)
    for name in (
        "news/lokalne.txt",
        "news/lokalne.json",
        "media/ab/ab" + "0" * 62,
        ".secret_key",
        "spool/dead.jsonl",
        "indexes/pomoc/chunks.json",
    ):
        assert restored[name] == original[name]
    assert not (settings.data_dir / "indexes" / ".build-0123abcd").exists()
    assert "voicebot/archives/2026-01.json" in restored
    assert "queue.db" not in restored and not (settings.data_dir / "news" / "outside").exists()
    assert report.files == len(report.manifest.files) - 1
    assert report.database == str(settings.data_dir / "app.db")
    assert report.warnings == []  # the key is in the archive and none is set here
    engine = make_engine(settings.sqlalchemy_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
    finally:
        engine.dispose()
    assert [p.name for p in tmp_path.iterdir()] == ["restored"]  # no staging left over


def test_restore_refuses_a_data_directory_that_is_not_empty(
    tmp_path: Path, sqlite_backup: tuple[Path, Installation]
) -> None:
    archive, _ = sqlite_backup
    settings = target(tmp_path)
    settings.data_dir.mkdir()
    kept = settings.data_dir / "app.db"
    kept.write_bytes(b"the data someone still needs")
    refused(archive, settings, "not empty", str(settings.data_dir))
    assert kept.read_bytes() == b"the data someone still needs"
    assert [p.name for p in settings.data_dir.iterdir()] == ["app.db"]


def test_restore_into_an_existing_empty_directory(
    tmp_path: Path, sqlite_backup: tuple[Path, Installation]
) -> None:
    archive, made = sqlite_backup
    settings = target(tmp_path)
    settings.data_dir.mkdir()
    reader.restore(archive, settings)
    assert tree(settings.data_dir)["news/lokalne.txt"] == tree(made.data_dir)["news/lokalne.txt"]
    assert not [p for p in settings.data_dir.iterdir() if p.name.startswith(".relaydesk-restore")]


def test_restore_puts_the_sqlite_file_at_db_path_outside_data_dir_if_it_is_free(
    tmp_path: Path, sqlite_backup: tuple[Path, Installation]
) -> None:
    archive, _ = sqlite_backup
    db_path = tmp_path / "databases" / "relay.db"
    settings = Settings(data_dir=tmp_path / "restored", db_path=db_path, database_url=None)  # type: ignore[call-arg]
    db_path.parent.mkdir()
    db_path.write_bytes(b"another installation's database")
    refused(archive, settings, "DB_PATH", "already exists")
    assert db_path.read_bytes() == b"another installation's database"
    db_path.unlink()
    report = reader.restore(archive, settings)
    assert report.database == str(db_path)
    assert db_path.read_bytes()[:16] == b"SQLite format 3\x00"
    assert not (settings.data_dir / "app.db").exists()
    assert sorted(p.name for p in db_path.parent.iterdir()) == ["relay.db"]


def test_restore_refuses_a_file_that_does_not_match_its_checksum(
    tmp_path: Path, sqlite_backup: tuple[Path, Installation]
) -> None:
    archive, _ = sqlite_backup

    def tamper(members: Members) -> None:
        for i, (info, data) in enumerate(members):
            if info.name == "data/news/lokalne.txt":
                members[i] = (info, data.replace(b"most", b"MOST"))  # the same length

    changed = rebuild(archive, tmp_path / "changed.tar.gz", tamper)
    refused(changed, target(tmp_path), "data/news/lokalne.txt", "checksum")


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (extra("data/../../escaped.txt"), ("leads out of its folder",)),
        (extra("/tmp/relaydesk-absolute.txt"), ("absolute path",)),
        (extra("data/news/link", b"", tarfile.SYMTYPE, "/etc/passwd"), ("a link",)),
        (extra("data/news/hard", b"", tarfile.LNKTYPE, "data/news/lokalne.txt"), ("a link",)),
        (extra("data/news/fifo", b"", tarfile.FIFOTYPE), ("special file",)),
        (extra("data/news/extra.txt", b"not listed"), ("does not list", "extra.txt")),
        (extra("data/elsewhere", b"", tarfile.DIRTYPE), ("folder its manifest does not list",)),
    ],
    ids=["dotdot", "absolute", "symlink", "hardlink", "fifo", "unlisted", "folder"],
)
def test_restore_refuses_members_that_are_not_plain_listed_files(
    tmp_path: Path,
    sqlite_backup: tuple[Path, Installation],
    edit: Callable[[Members], None],
    words: tuple[str, ...],
) -> None:
    archive, _ = sqlite_backup
    bad = rebuild(archive, tmp_path / "bad.tar.gz", edit)
    refused(bad, target(tmp_path), *words)
    assert not (tmp_path.parent / "escaped.txt").exists()
    assert not Path("/tmp/relaydesk-absolute.txt").exists()


def test_restore_refuses_what_is_not_a_whole_relaydesk_archive(
    tmp_path: Path, sqlite_backup: tuple[Path, Installation]
) -> None:
    archive, _ = sqlite_backup
    settings = target(tmp_path)
    refused(archive.with_name("nothing.tar.gz"), settings, "does not exist")
    wrong = tmp_path / "backup.zip"
    wrong.write_bytes(archive.read_bytes())
    refused(wrong, settings, "does not end in .tar.gz")
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not gzip at all" * 100)
    refused(garbage, settings, "not a readable .tar.gz")
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    refused(truncated, settings, "not a readable .tar.gz")

    def drop(name: str) -> Callable[[Members], None]:
        return lambda members: members.__setitem__(
            slice(None), [m for m in members if m[0].name != name]
        )

    refused(rebuild(archive, tmp_path / "a.tar.gz", drop(MANIFEST)), settings, "no manifest.json")
    refused(
        rebuild(archive, tmp_path / "b.tar.gz", drop("data/news/lokalne.json")),
        settings,
        "data/news/lokalne.json",
        "missing from the archive",
    )
    newer = edit_manifest(lambda m: m.__setitem__("format_version", 99))
    refused(rebuild(archive, tmp_path / "c.tar.gz", newer), settings, "newer relaydesk")
    future = edit_manifest(lambda m: m["database"].__setitem__("alembic_revision", "9999"))
    refused(rebuild(archive, tmp_path / "d.tar.gz", future), settings, "upgrade relaydesk")


def test_a_sqlite_archive_is_not_restored_into_a_postgresql_configuration(
    tmp_path: Path, sqlite_backup: tuple[Path, Installation]
) -> None:
    archive, _ = sqlite_backup
    # Refused before any connection: nothing listens at this address.
    settings = target(tmp_path, url="postgresql://nobody@127.0.0.1:9/nothing")
    refused(archive, settings, "SQLite database", "uses PostgreSQL", "relaydesk db copy")


def test_a_postgresql_archive_is_not_restored_into_a_sqlite_configuration(
    tmp_path: Path, sqlite_backup: tuple[Path, Installation]
) -> None:
    archive, _ = sqlite_backup

    def as_postgresql(members: Members) -> None:
        edit_manifest(_postgresql_manifest)(members)
        for info, _data in members:
            if info.name == "database/app.db":
                info.name = "database/relaydesk.dump"

    dumped = rebuild(archive, tmp_path / "pg.tar.gz", as_postgresql)
    refused(dumped, target(tmp_path), "PostgreSQL database", "uses SQLite")


def _postgresql_manifest(manifest: dict) -> None:
    manifest["database"].update(kind="postgresql", file="database/relaydesk.dump")
    for entry in manifest["files"]:
        if entry["path"] == "database/app.db":
            entry["path"] = "database/relaydesk.dump"


def test_the_secret_key_from_the_environment_is_not_inside_and_restore_says_so(
    tmp_path: Path,
) -> None:
    made = install(tmp_path / "env", key_in_file=False)
    archive = tmp_path / "env.tar.gz"
    report = writer.write_backup(archive, made.settings)
    assert report.manifest.secret_key == "environment"
    assert not [e for e in report.manifest.files if e.path.endswith(".secret_key")]
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            data = tar.extractfile(member).read() if member.isreg() else b""  # type: ignore[union-attr]
            assert SECRET.encode() not in data, member.name

    unset = reader.restore(archive, target(tmp_path / "a"))
    assert any("set the same SECRET_KEY" in w for w in unset.warnings), unset.warnings
    other = reader.restore(archive, target(tmp_path / "b", secret_key="another-key-" * 4))
    assert any("not the one" in w for w in other.warnings), other.warnings
    same = reader.restore(archive, target(tmp_path / "c", secret_key=SECRET))
    assert same.warnings == []


def test_a_secret_key_in_the_environment_that_differs_from_the_archives_is_warned_of(
    tmp_path: Path, sqlite_backup: tuple[Path, Installation]
) -> None:
    archive, _ = sqlite_backup
    report = reader.restore(archive, target(tmp_path, secret_key="another-key-" * 4))
    assert any("wins over the restored" in w for w in report.warnings), report.warnings


@postgresql_only
def test_postgresql_restore_needs_an_empty_database_and_loads_a_dump(tmp_path: Path) -> None:
    made = install(tmp_path / "pg", sqlite=False)
    archive = tmp_path / "pg.tar.gz"
    report = writer.write_backup(archive, made.settings)
    assert report.manifest.database_kind == "postgresql"
    assert report.manifest.server_version

    busy_url = database_url(tmp_path / "busy")
    engine = make_engine(busy_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE someone_elses (id integer)")
            conn.exec_driver_sql("INSERT INTO someone_elses VALUES (1)")
        refused(archive, target(tmp_path / "busy", url=busy_url), "not empty", "someone_elses")
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM someone_elses").scalar() == 1
    finally:
        engine.dispose()

    empty_url = database_url(tmp_path / "empty")
    settings = target(tmp_path / "empty", url=empty_url)
    restored = reader.restore(archive, settings)
    assert restored.database.startswith("database ")
    engine = make_engine(empty_url)
    try:
        with engine.connect() as conn:
            revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    finally:
        engine.dispose()
    assert revision == report.manifest.alembic_revision
    assert tree(settings.data_dir)["news/lokalne.txt"] == tree(made.data_dir)["news/lokalne.txt"]


# --- The schedule ----------------------------------------------------------------------------


def test_scheduled_backups_run_once_a_day_and_keep_the_newest(
    tmp_path: Path, clock: FrozenClock
) -> None:
    migrations.upgrade()  # the suite's own database, which the schedule backs up
    folder = tmp_path / "backups"
    settings = get_settings().model_copy(
        update={"backup_dir": folder, "backup_keep": 2, "backup_hour": 3}
    )
    assert tasks.scheduled_backup(get_settings().model_copy(update={"backup_dir": None})) is None

    clock.freeze(datetime(2026, 3, 1, 2, 5, tzinfo=UTC))
    assert tasks.scheduled_backup(settings) is None  # before BACKUP_HOUR
    assert not folder.exists() or not list(folder.glob("*.tar.gz"))

    folder.mkdir()
    foreign = folder / "relaydesk-keep-me.tar.gz"
    foreign.write_bytes(b"someone else's")
    made = []
    for day, hour in ((1, 3), (2, 3), (3, 15)):  # the third: a worker that was down at 03:00
        clock.freeze(datetime(2026, 3, day, hour, 5, tzinfo=UTC))
        made.append(tasks.scheduled_backup(settings))
        assert tasks.scheduled_backup(settings) is None  # another worker, the same day
    assert [p.name for p in made if p] == [
        "relaydesk-20260301-030500.tar.gz",
        "relaydesk-20260302-030500.tar.gz",
        "relaydesk-20260303-150500.tar.gz",
    ]
    assert sorted(p.name for p in folder.iterdir()) == [
        ".relaydesk-20260303.claim",
        "relaydesk-20260302-030500.tar.gz",
        "relaydesk-20260303-150500.tar.gz",
        "relaydesk-keep-me.tar.gz",
    ]
    with tarfile.open(folder / "relaydesk-20260303-150500.tar.gz", "r:gz") as tar:
        handle = tar.extractfile(MANIFEST)
        assert handle is not None
        manifest = Manifest.from_json(handle.read())
    assert manifest.created_at == "2026-03-03T15:05:00Z"
    assert manifest.database_kind == ("sqlite" if BACKEND == "sqlite" else "postgresql")


def test_a_failed_scheduled_backup_is_tried_again_at_the_next_hour(
    tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = get_settings().model_copy(update={"backup_dir": tmp_path, "backup_hour": 0})
    clock.freeze(datetime(2026, 3, 1, 4, 5, tzinfo=UTC))

    def broken(path: Path, _settings: Settings) -> None:
        raise BackupError("pg_dump failed: the disk is full")

    monkeypatch.setattr(tasks, "write_backup", broken)
    with pytest.raises(BackupError):
        tasks.scheduled_backup(settings)
    assert list(tmp_path.iterdir()) == []  # the day is not claimed
    monkeypatch.undo()
    migrations.upgrade()
    clock.move(datetime(2026, 3, 1, 5, 5, tzinfo=UTC) - clock.at)
    assert tasks.scheduled_backup(settings) == tmp_path / "relaydesk-20260301-050500.tar.gz"


# --- The round trip, with real processes ----------------------------------------------------


def _wait_json(
    client: httpx.Client,
    path: str,
    check: Callable[[dict], bool],
    what: str,
    deployment: Deployment,
) -> dict:
    found: dict = {}

    def look() -> bool:
        nonlocal found
        answer = client.get(path)
        found = answer.json() if answer.status_code == 200 else {}
        return bool(found) and check(found)

    wait_until(look, 90, what, deployment)
    return found


CHECK_KEY = """
import hashlib, sys
from relaydesk.ai.settings import read_ai
from relaydesk.core.db import session_scope
with session_scope(write=False) as session:
    config, unreadable = read_ai(session)
if unreadable:
    print("unreadable")
elif config.api_key and hashlib.sha256(config.api_key.encode()).hexdigest() == sys.argv[1]:
    print("same")
else:
    print("different")
"""


def _stored_key(env: dict[str, str], digest: str) -> str:
    done = subprocess.run(
        [CLI[0], "-c", CHECK_KEY, digest], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.e2e
def test_round_trip_everything_readable_after_restore(tmp_path: Path) -> None:
    original = Deployment(tmp_path / "original")
    restored: Deployment | None = None
    api_key = "sk-backup-test-" + "7" * 32
    key_digest = hashlib.sha256(api_key.encode()).hexdigest()
    try:
        original.start()
        admin = original.run("token", "create", "backup-admin", "--role", "admin")
        admin_token = admin.strip().splitlines()[-1]
        with original.client() as client:
            mms = client.post(
                "/sandbox/phone/messages",
                data={"from": "+48600100200", "body": "Zdjęcie paczki"},
                files=[("media", ("paczka.png", PNG, "image/png"))],
            )
            assert mms.status_code == 201, mms.text
            sent = client.post(
                "/api/send-message", json={"to": "+48600100200", "body": "Dziękujemy, jedzie!"}
            )
            assert sent.status_code in (200, 201, 202), sent.text
            sent_id = sent.json()["id"]
            upload = client.post("/api/media", files={"file": ("logo.png", PNG, "image/png")})
            assert upload.status_code == 201, upload.text
            upload_path = urlsplit(upload.json()["url"]).path
            configured = client.put(
                "/api/ai/config",
                json={"provider": "openai", "api_key": api_key},
                headers={"Authorization": f"Bearer {admin_token}"},
            )
            assert configured.status_code == 200, configured.text
            inbound = _wait_json(
                client,
                "/api/messages?direction=inbound",
                lambda page: any(
                    m["media"] and m["media"][0]["state"] == "stored" for m in page["items"]
                ),
                "the MMS and its picture to be stored",
                original,
            )
            _wait_json(
                client,
                f"/api/messages/{sent_id}",
                lambda m: m["status"] == "delivered",
                "the sent message to be delivered",
                original,
            )
            picture = inbound["items"][0]["media"][0]
            emulator_sids = sorted(m.sid for m in original.emulator_messages())
        text = "Paczkomaty w Warszawie działają całą dobę."
        write_category(
            original.data_dir / "news",
            "lokalne",
            [
                Article(
                    url="https://example.com/paczkomaty",
                    title="Paczkomaty",
                    text=text,
                    source="https://example.com/rss",
                    published="2026-01-02",
                    fetched_at="2026-01-02T10:00:00+00:00",
                    content_hash=content_hash(text),
                )
            ],
        )

        archive = tmp_path / "backups" / "relaydesk.tar.gz"
        started = time.monotonic()
        printed = original.run("backup", str(archive))  # while the server runs
        took = time.monotonic() - started
        assert "backup written to" in printed and "secret key is inside" in printed, printed
        assert api_key not in printed
        print(f"\nround-trip archive: {archive.stat().st_size} bytes, backup command {took:.1f} s")
        original.stop()
        kept = {
            name: digest
            for name, digest in tree(original.data_dir).items()
            if (name.startswith(("media/", "news/")) or name == ".secret_key")
            and Path(name).name not in writer.LOCK_FILES  # made again on first use
        }
        assert any(name.startswith("media/") for name in kept)

        restored = Deployment(tmp_path / "restored", setup=False)
        started = time.monotonic()
        said = restored.run("restore", str(archive))
        print(f"round-trip restore command {time.monotonic() - started:.1f} s")
        assert "restored" in said and ("SQLite" if BACKEND == "sqlite" else "PostgreSQL") in said
        restored.token = original.token  # the token is restored with the database
        restored.start()

        back = tree(restored.data_dir)
        assert {name: back.get(name) for name in kept} == kept  # byte-identical
        with restored.client() as client:
            listed = client.get("/api/messages").json()
            bodies = {m["body"] for m in listed["items"]}
            assert {"Zdjęcie paczki", "Dziękujemy, jedzie!"} <= bodies
            assert client.get(f"/api/messages/{sent_id}").json()["status"] == "delivered"
            stored_picture = client.get(f"/media/{picture['id']}")
            assert stored_picture.status_code == 200 and stored_picture.content == PNG
            published = client.get(upload_path)
            assert published.status_code == 200 and published.content == PNG
            news = client.get("/api/news/files/lokalne.txt")
            assert news.status_code == 200 and "Paczkomaty w Warszawie" in news.text
            ai = client.get(
                "/api/ai/config", headers={"Authorization": f"Bearer {admin_token}"}
            ).json()
            assert ai["api_key_set"] is True and ai["api_key_unreadable"] is False, ai
        assert sorted(m.sid for m in restored.emulator_messages()) == emulator_sids
        # The encrypted key decrypts with the restored .secret_key, to the same value,
        # and not with another key (the check can fail).
        assert _stored_key(restored.env, key_digest) == "same"
        wrong = {**restored.env, "SECRET_KEY": "a-different-secret-key-" + "9" * 20}
        assert _stored_key(wrong, key_digest) == "unreadable"
    finally:
        original.stop()
        if restored is not None:
            restored.stop()
