"""The webhook spool: nothing acknowledged is lost, and one bad record never blocks the rest."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DataError, OperationalError

from relaydesk.core.models import AuditEntry
from relaydesk.messaging.models import Message, MessageEvent
from tests.conftest import BACKEND, wait_for
from tests.messaging.test_webhooks import Post, inbound, new_sid

pytestmark = pytest.mark.usefixtures("empty_spool")
sqlite_only = pytest.mark.skipif(
    BACKEND != "sqlite", reason="holds SQLite's write lock from another connection"
)


def folder() -> Path:
    from relaydesk.core.config import get_settings

    return get_settings().data_dir / "spool"


def spool_lines(name: str, *entries: dict[str, Any] | str) -> None:
    """Write spool lines by hand, as an earlier run (or a crash) left them."""
    folder().mkdir(parents=True, exist_ok=True)
    with open(folder() / name, "a", encoding="utf-8") as handle:
        for entry in entries:
            handle.write((entry if isinstance(entry, str) else json.dumps(entry)) + "\n")


def dead_file() -> list[dict[str, Any]]:
    path = folder() / "dead.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def waiting_files() -> list[Path]:
    files = [*folder().glob("*.replaying"), folder() / "webhooks.jsonl"]
    return [f for f in files if f.exists() and f.stat().st_size]


def spool_waiting() -> int:
    from relaydesk.messaging import spool

    return spool.counts().waiting


def stored_bodies(db: Any, *sids: str) -> dict[str, str]:
    db.expire_all()
    rows = db.execute(select(Message.sid, Message.body).where(Message.sid.in_(sids))).all()
    return {row.sid: row.body for row in rows}


def events_of(db: Any, sid: str) -> int:
    db.expire_all()
    return int(db.scalar(select(func.count()).where(MessageEvent.sid == sid)) or 0)


def test_a_poisoned_line_goes_to_the_dead_letters_and_the_good_ones_are_stored(
    server: Any, db: Any
) -> None:
    from relaydesk.messaging import spool

    first, last, callback = new_sid(), new_sid(), new_sid()
    spool_lines(
        "webhooks.jsonl",
        {"kind": "inbound", "params": inbound(first, "pierwsza")},
        {"kind": "inbound", "params": {"MessageSid": new_sid(), "Body": "no From, no To"}},
        '{"kind": "inbound", "params": {"MessageSid": "SMcut',  # a line cut by a crash
        {"kind": "status", "params": {"MessageSid": callback, "MessageStatus": "delivered"}},
        {"kind": "inbound", "params": inbound(last, "ostatnia")},
    )
    spool.replay()
    assert stored_bodies(db, first, last) == {first: "pierwsza", last: "ostatnia"}
    assert events_of(db, callback) == 1
    assert waiting_files() == []
    dead = dead_file()
    assert len(dead) == 2
    assert any("MessageSid, From and To" in d["error"] for d in dead)
    assert any("SMcut" in d.get("line", "") for d in dead)
    assert spool.counts() == spool.SpoolCounts(waiting=0, dead=2)
    assert spool.replay() == 0  # the dead letters are not tried again by themselves


def test_a_replaying_file_left_by_a_crash_and_new_lines_are_all_stored(
    server: Any, db: Any
) -> None:
    from relaydesk.messaging import spool

    old, new = new_sid(), new_sid()
    # What the previous version left behind when its replay kept failing.
    spool_lines("webhooks.replaying", {"kind": "inbound", "params": inbound(old, "stara")})
    spool_lines("webhooks.jsonl", {"kind": "inbound", "params": inbound(new, "nowa")})
    spool.replay()
    assert stored_bodies(db, old, new) == {old: "stara", new: "nowa"}
    assert waiting_files() == []


def test_a_replay_repeated_after_a_crash_keeps_every_webhook_once(server: Any, db: Any) -> None:
    from relaydesk.messaging import spool

    sid, callback = new_sid(), new_sid()
    lines = [
        {
            "id": "a1b2c3d4e5f6",
            "kind": "inbound",
            "params": inbound(sid, "raz"),
            "at": "2024-05-01T10:00:00.123456+00:00",
        },
        {
            "id": "0a1b2c3d4e5f",
            "kind": "status",
            "params": {"MessageSid": callback, "MessageStatus": "sent"},
            "token": None,
            "at": "2024-05-01T10:00:01.654321+00:00",
        },
    ]
    spool_lines("webhooks.jsonl", *lines)
    spool.replay()
    # The process died after the commit and before the file was removed.
    spool_lines("webhooks.replaying", *lines)
    spool.replay()
    assert stored_bodies(db, sid) == {sid: "raz"}
    assert events_of(db, callback) == 1
    assert waiting_files() == []
    assert dead_file() == []


@pytest.fixture
def locked_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Another connection locks the database for writes until the test rolls it back.

    SQLite: its write lock. PostgreSQL: the messages and events tables, as a long
    migration or a manual `LOCK TABLE` would.
    """
    from relaydesk.core import db as database
    from relaydesk.core.config import get_settings

    # Writers give up after half a second instead of ten (no test waits on the clock).
    monkeypatch.setattr(database, "WRITE_LOCK_TIMEOUT", 0.5)
    holder: Any
    if BACKEND == "postgresql":
        import psycopg

        url = get_settings().sqlalchemy_url.replace("postgresql+psycopg", "postgresql")
        holder = psycopg.connect(url)
        holder.execute("LOCK TABLE messages, message_events IN EXCLUSIVE MODE")
    else:
        holder = sqlite3.connect(get_settings().sqlite_path, timeout=30, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    try:
        yield holder
    finally:
        holder.rollback()
        holder.close()


def test_records_wait_in_the_spool_while_the_database_is_locked(
    server: Any, db: Any, locked_database: Any
) -> None:
    from relaydesk.messaging import spool

    first, second = new_sid(), new_sid()
    spool_lines(
        "webhooks.jsonl",
        {"kind": "inbound", "params": inbound(first, "jeden")},
        {"kind": "inbound", "params": inbound(second, "dwa")},
    )
    spool.replay()  # the database is unavailable: nothing is lost, nothing is dead
    assert spool.counts() == spool.SpoolCounts(waiting=2, dead=0)
    locked_database.rollback()
    spool.replay()
    assert stored_bodies(db, first, second) == {first: "jeden", second: "dwa"}
    assert spool.counts() == spool.SpoolCounts(waiting=0, dead=0)


@sqlite_only
def test_a_replay_cut_short_by_a_lock_keeps_the_rest_for_the_next_one(
    server: Any, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database locks up after the first record: the others wait, none is lost or dead."""
    from relaydesk.core import db as database
    from relaydesk.core.config import get_settings
    from relaydesk.messaging import spool

    monkeypatch.setattr(database, "WRITE_LOCK_TIMEOUT", 0.5)
    monkeypatch.setattr(spool, "CHUNK", 1)
    sids = [new_sid() for _ in range(3)]
    spool_lines(
        "webhooks.jsonl", *({"kind": "inbound", "params": inbound(sid, sid)} for sid in sids)
    )
    holder = sqlite3.connect(
        get_settings().sqlite_path, timeout=30, isolation_level=None, check_same_thread=False
    )
    original = spool.store_inbound
    taking = threading.Thread(target=holder.execute, args=("BEGIN IMMEDIATE",))
    released = threading.Event()

    def store(session: Any, records: Any) -> Any:
        if records[0].sid == sids[1] and not released.is_set():
            if taking.ident is None:
                # Another process takes the database as soon as this transaction lets go.
                taking.start()
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return original(session, records)

    monkeypatch.setattr(spool, "store_inbound", store)
    try:
        spool.replay()
        taking.join(timeout=30)
        assert holder.in_transaction
        assert stored_bodies(db, *sids) == {sids[0]: sids[0]}
        assert spool.counts() == spool.SpoolCounts(waiting=2, dead=0)
        holder.rollback()
        released.set()
        spool.replay()
    finally:
        holder.close()
    assert stored_bodies(db, *sids) == {sid: sid for sid in sids}
    assert spool.counts() == spool.SpoolCounts(waiting=0, dead=0)


def test_webhooks_spooled_during_a_database_lock_are_stored_by_the_sweep(
    twilio_post: Post, db: Any, locked_database: Any
) -> None:
    """Through the real server: a poisoned callback and a customer's message, both 200."""
    from relaydesk.messaging import tasks

    poisoned, customer = new_sid(), new_sid()
    callback = {"MessageSid": poisoned, "MessageStatus": "failed", "ErrorCode": "9" * 23}
    assert twilio_post("/twilio/status", callback).status_code == 200
    message = inbound(customer, "czy ktoś tam jest?")
    assert twilio_post("/twilio/inbound", message).status_code == 200
    assert stored_bodies(db, customer) == {}
    assert waiting_files() != []
    locked_database.rollback()
    tasks.sweep()
    assert stored_bodies(db, customer) == {customer: "czy ktoś tam jest?"}
    assert events_of(db, poisoned) == 1
    assert waiting_files() == []
    assert dead_file() == []


def test_while_the_database_is_unavailable_webhooks_do_not_wait_for_it(
    twilio_post: Post,
    db: Any,
    locked_database: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Twilio waits 15 s: after one failed write the next webhooks do not wait out the lock.

    Once a write succeeds again, what waits in the spool is stored at once.
    """
    from relaydesk.core import db as database

    first, second, third = new_sid(), new_sid(), new_sid()
    assert twilio_post("/twilio/inbound", inbound(first, "1")).status_code == 200
    # From now on a writer would wait ten minutes for the lock (longer than the client).
    monkeypatch.setattr(database, "WRITE_LOCK_TIMEOUT", 600.0)
    assert twilio_post("/twilio/inbound", inbound(second, "2")).status_code == 200
    assert stored_bodies(db, first, second) == {}
    assert spool_waiting() == 2
    locked_database.rollback()
    assert twilio_post("/twilio/inbound", inbound(third, "3")).status_code == 200
    assert stored_bodies(db, third) == {third: "3"}
    wait_for(lambda: len(stored_bodies(db, first, second)) == 2, what="the spool's replay")


def permanent_failure(records: Any, lock_wait: float | None = None, **_: Any) -> str:
    raise DataError("INSERT INTO messages …", {}, Exception("integer out of range"))


def test_a_webhook_that_can_never_be_stored_is_a_dead_letter_at_once_and_can_be_retried(
    twilio_post: Post, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relaydesk.messaging import spool, writer

    sid = new_sid()
    with monkeypatch.context() as patch:
        patch.setattr(writer, "write_batch", permanent_failure)
        assert twilio_post("/twilio/inbound", inbound(sid, "po aktualizacji")).status_code == 200
    assert waiting_files() == []  # not left to block the spool
    [dead] = dead_file()
    assert dead["params"]["MessageSid"] == sid
    assert "integer out of range" in dead["error"]
    # An upgrade fixed the cause: the admin retries it.
    outcome = spool.retry([dead["id"]], actor="test")
    assert (outcome.stored, outcome.failing) == (1, 0)
    assert stored_bodies(db, sid) == {sid: "po aktualizacji"}
    assert dead_file() == []
    audit = db.scalar(select(AuditEntry).where(AuditEntry.action == "spool.retry"))
    assert audit.actor == "test"
    assert dead["id"] in audit.details["ids"]


def test_a_webhook_the_database_cannot_take_now_waits_in_the_spool(
    twilio_post: Post, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relaydesk.messaging import spool, writer

    def unavailable(records: Any, lock_wait: float | None = None, **_: Any) -> str:
        raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))

    sid = new_sid()
    with monkeypatch.context() as patch:
        patch.setattr(writer, "write_batch", unavailable)
        assert twilio_post("/twilio/inbound", inbound(sid, "później")).status_code == 200
    assert dead_file() == []
    spool.replay()
    assert stored_bodies(db, sid) == {sid: "później"}


def test_a_webhook_that_cannot_even_reach_the_disk_gets_5xx(
    twilio_post: Post, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relaydesk.messaging import writer

    shutil.rmtree(folder(), ignore_errors=True)
    folder().parent.mkdir(parents=True, exist_ok=True)
    folder().write_text("not a folder")  # the spool cannot be created
    try:
        with monkeypatch.context() as patch:
            patch.setattr(writer, "write_batch", permanent_failure)
            answer = twilio_post("/twilio/inbound", inbound(new_sid()))
        assert answer.status_code >= 500  # Twilio must not think it was kept
    finally:
        folder().unlink()


def test_a_retry_while_the_database_is_locked_changes_nothing(
    server: Any, locked_database: Any
) -> None:
    from relaydesk.core.errors import Unavailable
    from relaydesk.messaging import spool

    spool_lines(
        "dead.jsonl",
        {"id": "0123456789ab", "kind": "inbound", "params": inbound(new_sid()), "error": "x"},
    )
    before = dead_file()
    with pytest.raises(Unavailable):
        spool.retry(None, actor="test")
    assert dead_file() == before


def test_a_record_that_fails_again_while_the_database_answers_is_set_aside(
    server: Any, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error that looks transient but repeats while other writes succeed is not waited on."""
    from relaydesk.messaging import spool

    stuck, good = new_sid(), new_sid()
    original = spool.store_inbound

    def store(session: Any, records: Any) -> Any:
        if any(r.sid == stuck for r in records):
            raise OperationalError("INSERT", {}, Exception("too many terms in compound SELECT"))
        return original(session, records)

    monkeypatch.setattr(spool, "store_inbound", store)
    spool_lines(
        "webhooks.jsonl",
        {"kind": "inbound", "params": inbound(stuck, "utknęła")},
        {"kind": "inbound", "params": inbound(good, "dobra")},
    )
    spool.replay()
    assert stored_bodies(db, good) == {good: "dobra"}
    [dead] = dead_file()
    assert dead["params"]["MessageSid"] == stuck
    assert waiting_files() == []


def test_health_reports_the_spool_backlog_and_dead_letters(server: Any) -> None:
    spool_lines("webhooks.jsonl", {"kind": "inbound", "params": inbound(new_sid())})
    spool_lines(
        "dead.jsonl",
        {
            "id": "0123456789ab",
            "kind": "inbound",
            "params": {"MessageSid": new_sid()},
            "error": "BadWebhook: an inbound webhook needs MessageSid, From and To",
            "failed_at": "2024-05-01T10:00:00+00:00",
        },
    )
    health = httpx.get(server.url + "/health").json()
    assert health["spool_backlog"] == 1
    assert health["dead_letters"] == 1


def test_the_web_process_replays_its_own_spool(server: Any, db: Any) -> None:
    """A web process started with --no-worker runs no sweep; it must still replay."""
    from relaydesk.messaging.writer import get_writer

    sid = new_sid()
    spool_lines("webhooks.jsonl", {"kind": "inbound", "params": inbound(sid, "bez workera")})
    get_writer().replay_soon()
    wait_for(lambda: stored_bodies(db, sid), what="the web process's replay")
    wait_for(lambda: not waiting_files(), what="the spool to empty")
