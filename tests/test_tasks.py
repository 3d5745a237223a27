"""The task queue: jobs after commit only, lost jobs recovered, Redis backend."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError

from relaydesk.messaging.models import Message
from tests.conftest import missing, wait_for
from tests.pgserver import free_port


def queued_names() -> list[str]:
    from relaydesk.core.tasks import hueys

    return [t.name for h in hueys().values() for t in [*h.pending(), *h.scheduled()]]


def test_jobs_are_queued_only_after_commit(server: Any) -> None:
    from relaydesk.core.db import get_write_sessionmaker
    from relaydesk.messaging import service

    factory = get_write_sessionmaker()
    session = factory()
    try:
        service.send(session, service.SendRequest(to="+48600100600", body="x"), deliver_inline=True)
        assert "messaging.deliver" not in queued_names()
        session.commit()
        assert "messaging.deliver" in queued_names()
    finally:
        session.close()


def test_jobs_are_dropped_on_rollback(server: Any, db: Any) -> None:
    from relaydesk.core.db import get_write_sessionmaker
    from relaydesk.messaging import service

    session = get_write_sessionmaker()()
    try:
        service.send(session, service.SendRequest(to="+48600100601", body="x"), deliver_inline=True)
        session.rollback()
        session.commit()
    finally:
        session.close()
    assert "messaging.deliver" not in queued_names()
    assert db.scalar(select(Message.id).where(Message.participant == "+48600100601")) is None


def test_jobs_queued_in_a_savepoint_wait_for_the_real_commit(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A released savepoint is not a commit: other connections cannot see the rows yet.

    (SQLAlchemy reports both as `after_commit`; a media job queued by an inbound
    handler in its savepoint then ran before the message's files were committed, and
    on PostgreSQL found nothing to do.) A savepoint rolled back drops its own jobs only.
    """
    from relaydesk.core import tasks
    from relaydesk.core.db import get_write_sessionmaker

    queued: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(
        tasks, "_enqueue", lambda name, args, *rest, **options: queued.append((name, args))
    )
    session = get_write_sessionmaker()()
    try:
        session.execute(text("SELECT 1"))
        with session.begin_nested():
            tasks.enqueue_after_commit(session, "media.process", 1)
        assert queued == []
        with pytest.raises(RuntimeError), session.begin_nested():  # a handler that failed
            tasks.enqueue_after_commit(session, "media.process", 2)
            with session.begin_nested():
                tasks.enqueue_after_commit(session, "media.process", 3)
            raise RuntimeError("handler failed")
        with session.begin_nested(), session.begin_nested():
            tasks.enqueue_after_commit(session, "media.process", 4)
        tasks.enqueue_after_commit(session, "media.process", 5)
        assert queued == []
        session.commit()
        assert queued == [("media.process", (n,)) for n in (1, 4, 5)]
    finally:
        session.close()


def test_merged_jobs_of_a_transaction_become_one_job_of_what_was_committed(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's handlers each queue their run in their own savepoint: the runs of the
    savepoints that were released go out as one job, in order, at most MERGE_LIMIT
    items a job; a savepoint rolled back takes its items along; a delayed job and
    jobs that do not merge keep their own places."""
    from relaydesk.core import tasks
    from relaydesk.core.db import get_write_sessionmaker

    queued: list[tuple[str, tuple[Any, ...], float | None]] = []
    monkeypatch.setattr(
        tasks,
        "_enqueue",
        lambda name, args, delay, *rest, **options: queued.append((name, args, delay)),
    )
    monkeypatch.setattr(tasks, "MERGE_LIMIT", 4)
    session = get_write_sessionmaker()()
    try:
        session.execute(text("SELECT 1"))
        with session.begin_nested():
            tasks.enqueue_after_commit(session, "automation.runs", [1], merge=True)
        tasks.enqueue_after_commit(session, "media.process", 9)
        with pytest.raises(RuntimeError), session.begin_nested():
            tasks.enqueue_after_commit(session, "automation.runs", [2], merge=True)
            raise RuntimeError("handler failed")
        for run_id in (3, 4, 5, 6, 7):
            with session.begin_nested():
                tasks.enqueue_after_commit(session, "automation.runs", [run_id], merge=True)
        tasks.enqueue_after_commit(session, "automation.run", 8, delay=5.0)
        with pytest.raises(TypeError):
            tasks.enqueue_after_commit(session, "automation.runs", 10, merge=True)
        assert queued == []
        session.commit()
        assert queued == [
            ("automation.runs", ([1, 3, 4, 5],), None),
            ("media.process", (9,), None),
            ("automation.runs", ([6, 7],), None),
            ("automation.run", (8,), 5.0),
        ]
    finally:
        session.close()


def test_sweep_delivers_a_message_whose_job_was_lost(server: Any, db: Any) -> None:
    from relaydesk.core.db import session_scope
    from relaydesk.core.tasks import get_huey
    from relaydesk.messaging import service, tasks

    with session_scope() as session:
        message = service.send(
            session, service.SendRequest(to="+48600100602", body="zgubiony"), deliver_inline=True
        )
        message_id = message.id
    get_huey().flush()  # the queue lost the job (e.g. Redis was wiped)
    tasks.sweep()
    wait_for(
        lambda: db.scalar(select(Message.sid).where(Message.id == message_id)),
        what="the swept message to be submitted",
    )


def test_inbound_handlers_run_once_and_lost_jobs_are_swept(
    server: Any, db: Any, twilio_post: Callable[..., httpx.Response]
) -> None:
    from relaydesk.core.db import session_scope, utcnow
    from relaydesk.messaging import hooks, tasks

    calls: list[str] = []

    @hooks.on_inbound("test.recorder")
    def record(session: Any, message: Message) -> None:
        calls.append(message.body)

    try:
        sid = "SM" + "d" * 32
        twilio_post(
            "/twilio/inbound",
            {"MessageSid": sid, "From": "+48600100603", "To": "+15005550006", "Body": "hej"},
        )
        wait_for(lambda: calls == ["hej"], what="the follow-up handler")
        message_id = db.scalar(select(Message.id).where(Message.sid == sid))
        tasks.inbound_received([message_id])  # a repeated job finds the message done
        assert calls == ["hej"]
        with session_scope() as session:  # the job was lost two minutes ago
            session.execute(
                update(Message)
                .where(Message.sid == sid)
                .values(processed_at=None, created_at=utcnow() - timedelta(minutes=2))
            )
        tasks.sweep()
        wait_for(lambda: calls == ["hej", "hej"], what="the swept follow-up job")
    finally:
        hooks.remove_handler("test.recorder")


def test_inbound_handlers_take_a_batch_at_once_or_else_one_by_one(
    server: Any, db: Any, twilio_post: Callable[..., httpx.Response]
) -> None:
    from relaydesk.core.db import session_scope
    from relaydesk.messaging import hooks, tasks

    batches: list[list[str]] = []
    singles: list[str] = []
    failing = {"on": False}

    def record_many(session: Any, messages: list[Message]) -> None:
        batches.append([m.body for m in messages])
        if failing["on"]:
            raise OSError("disk")

    @hooks.on_inbound("test.batch", many=record_many)
    def record(session: Any, message: Message) -> None:
        singles.append(message.body)

    try:
        sids = ["SM" + "f" * 31 + str(i) for i in range(2)]
        for sid, body in zip(sids, ("pierwsza", "druga"), strict=True):
            twilio_post(
                "/twilio/inbound",
                {"MessageSid": sid, "From": "+48600100605", "To": "+15005550006", "Body": body},
            )
        wait_for(lambda: len(singles) + sum(map(len, batches)) == 2, what="the follow-ups")
        ids = list(db.scalars(select(Message.id).where(Message.sid.in_(sids)).order_by(Message.id)))
        for failing["on"] in (False, True):
            batches.clear()
            singles.clear()
            with session_scope() as session:  # both to be handled again, in one job
                session.execute(
                    update(Message).where(Message.id.in_(ids)).values(processed_at=None)
                )
            tasks.inbound_received(ids)
            assert batches == [["pierwsza", "druga"]]
            # A batch that failed is handled message by message; one that did not, never.
            assert singles == (["pierwsza", "druga"] if failing["on"] else [])
    finally:
        hooks.remove_handler("test.batch")


def test_a_handler_works_as_the_webhook_is_stored_or_else_in_the_follow_up_job(
    server: Any, db: Any, twilio_post: Callable[..., httpx.Response]
) -> None:
    """A handler with an at-store form does its work in the webhook's transaction (no
    follow-up job) in a process that runs the jobs too; if that fails, its writes are
    undone with it alone, the webhook is stored all the same, and the follow-up job
    handles the message."""
    from relaydesk.messaging import hooks

    stored: list[tuple[int, str, str]] = []
    singles: list[str] = []
    failing = {"on": False}

    def at_store(session: Any, messages: list[hooks.NewInbound]) -> None:
        stored.extend((m.id, m.participant, m.body) for m in messages)
        ids = [m.id for m in messages]
        session.execute(update(Message).where(Message.id.in_(ids)).values(error_message="x"))
        if failing["on"]:
            raise OSError("disk")

    @hooks.on_inbound("test.stored", at_store=at_store)
    def record(session: Any, message: Message) -> None:
        singles.append(message.body)

    def send(sid: str, body: str) -> Message:
        params = {"MessageSid": sid, "From": "+48600100606", "To": "+15005550006", "Body": body}
        assert twilio_post("/twilio/inbound", params).status_code == 200
        row = db.scalar(select(Message).where(Message.sid == sid))
        assert row is not None
        return row

    try:
        first = send("SM" + "e" * 31 + "1", "od razu")
        assert stored == [(first.id, "+48600100606", "od razu")]
        assert (first.error_message, first.processed_at is not None) == ("x", True)
        failing["on"] = True
        second = send("SM" + "e" * 31 + "2", "potem")
        assert second.error_message is None  # the handler's writes were undone

        def handled() -> bool:
            db.expire_all()
            return (
                db.scalar(select(Message.processed_at).where(Message.id == second.id)) is not None
            )

        wait_for(handled, what="the follow-up job")
        assert singles == ["potem"]  # the first message never went to the job
        # A web process that runs no jobs (scaled out) leaves the work to the workers.
        failing["on"] = False
        hooks.work_at_store(False)
        third = send("SM" + "e" * 31 + "3", "w pracowniku")
        wait_for(lambda: singles == ["potem", "w pracowniku"], what="the workers' job")
        assert third.error_message is None and len(stored) == 2
    finally:
        hooks.work_at_store(True)  # as the suite's server, which runs the jobs, has it
        hooks.remove_handler("test.stored")


def test_spooled_webhooks_are_replayed_once(server: Any, db: Any) -> None:
    from relaydesk.messaging import spool

    params = {
        "MessageSid": "SM" + "e" * 32,
        "From": "+48600100604",
        "To": "+15005550006",
        "Body": "z dysku",
    }
    spool.write("inbound", params)
    spool.write("inbound", params)  # Twilio's retry landed in the spool too
    spool.write("status", {"MessageSid": "SM" + "f" * 32, "MessageStatus": "delivered"})
    assert spool.replay() == 3
    assert spool.replay() == 0
    rows = db.scalars(select(Message.body).where(Message.sid == params["MessageSid"])).all()
    assert rows == ["z dysku"]


def test_webhook_is_spooled_when_the_database_fails(
    server: Any, db: Any, twilio_post: Callable[..., httpx.Response]
) -> None:
    """Twilio does not retry: a failing database must not lose the customer's message."""
    from relaydesk.messaging import spool, writer

    original = writer.write_batch

    def broken(records: Any, lock_wait: float | None = None, **_: Any) -> str:
        # What SQLite raises when its disk fails (the database is unavailable, not the
        # webhook at fault: it waits in the spool rather than among the dead letters).
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    writer.write_batch = broken  # type: ignore[assignment]
    try:
        answer = twilio_post(
            "/twilio/inbound",
            {
                "MessageSid": "SM" + "a1" * 16,
                "From": "+48600100605",
                "To": "+15005550006",
                "Body": "nie zgub mnie",
            },
        )
    finally:
        writer.write_batch = original  # type: ignore[assignment]
    assert answer.status_code == 200
    assert db.scalar(select(Message.id).where(Message.sid == "SM" + "a1" * 16)) is None
    assert spool.replay() == 1
    assert db.scalar(select(Message.body).where(Message.sid == "SM" + "a1" * 16)) == "nie zgub mnie"


@pytest.mark.e2e
def test_redis_backend_runs_jobs_in_a_separate_worker(tmp_path: Path) -> None:
    """REDIS_URL switches huey to Redis; a `relaydesk worker` process consumes the jobs."""
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        missing("redis-server is not installed")
        return
    port = free_port()
    redis = subprocess.Popen(
        [redis_bin, "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
    )
    # Twilio (here: an emulator address where nothing listens) is unreachable, so the
    # worker's attempt is recorded as a retry: proof that it took the job from Redis.
    env = {
        **os.environ,
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/app.db",
        "PORT": str(free_port()),
    }
    code = (
        "import sys\n"
        "from relaydesk import migrations\n"
        "from relaydesk.core import tasks\n"
        "from relaydesk.core.db import session_scope\n"
        "from relaydesk.messaging import service\n"
        "migrations.upgrade()\n"
        "assert type(tasks.get_huey()).__name__ == 'PriorityRedisHuey'\n"
        "with session_scope() as s:\n"
        "    m = service.send(s, service.SendRequest(to='+15005550001', body='x'))\n"
        "print(m.id)\n"
    )
    worker = None
    try:
        made = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
        )
        assert made.returncode == 0, made.stderr
        worker = subprocess.Popen(
            [sys.executable, "-m", "relaydesk.cli", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        status, _attempts, error = wait_for(
            lambda: _attempted(tmp_path / "app.db"), timeout=30, what="the Redis worker"
        )
        assert status == "pending"
        assert "cannot reach Twilio" in error
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=20)
        redis.terminate()
        redis.wait(timeout=10)


def _attempted(app_db: Path) -> tuple[str, int, str] | None:
    """(status, attempts, error) of the only message once a worker has tried to send it
    (Twilio unreachable: the attempt is recorded as a retry)."""
    import sqlite3

    with sqlite3.connect(app_db) as conn:
        row = conn.execute("SELECT status, attempts, error_message FROM messages").fetchone()
    return row if row and row[1] >= 1 and row[2] else None


def test_a_send_queued_by_the_version_before_priorities_is_made_after_the_upgrade(
    tmp_path: Path,
) -> None:
    """relaydesk before priorities kept its Redis queue as a list (huey's RedisHuey). A
    message queued for sending then, its process stopped, is sent by the upgraded
    `relaydesk worker`: the list becomes the priority queue at its start, job and all."""
    import redis

    from tests.processes import redis_server

    with redis_server() as url:
        env = {
            **os.environ,
            "REDIS_URL": url,
            "DATA_DIR": str(tmp_path),
            "DATABASE_URL": f"sqlite:///{tmp_path}/app.db",
            "PORT": str(free_port()),
        }
        # Queue the send as today, then put its job where the old version kept it.
        code = (
            "import redis\n"
            "from huey import RedisHuey\n"
            "from relaydesk import migrations\n"
            "from relaydesk.core import tasks\n"
            "from relaydesk.core.db import session_scope\n"
            "from relaydesk.messaging import service\n"
            "migrations.upgrade()\n"
            "huey = tasks.get_huey()\n"
            "with session_scope() as s:\n"
            "    service.send(s, service.SendRequest(to='+15005550001', body='x'))\n"
            f"client = redis.Redis.from_url({url!r})\n"
            "key = huey.storage.queue_key\n"
            "jobs = [member[8:] for member in client.zrange(key, 0, -1)]\n"
            "assert jobs\n"
            "client.delete(key)\n"
            "old = RedisHuey(huey.name, url=" + repr(url) + ", utc=True).storage\n"
            "for job in jobs:\n"
            "    old.enqueue(job)\n"
            "print(key)\n"
        )
        made = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
        )
        assert made.returncode == 0, made.stderr
        key = made.stdout.strip()
        client = redis.Redis.from_url(url)
        assert client.type(key) == b"list"
        worker = subprocess.Popen(
            [sys.executable, "-m", "relaydesk.cli", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            status, _attempts, error = wait_for(
                lambda: _attempted(tmp_path / "app.db"), timeout=30, what="the upgraded worker"
            )
        finally:
            worker.terminate()
            worker.wait(timeout=20)
        assert status == "pending"
        assert "cannot reach Twilio" in error
        assert client.type(key) in (b"zset", b"none")


def test_sweep_applies_callbacks_that_raced_the_send(server: Any, db: Any) -> None:
    """A callback stored before its SID was known still moves the message (safety net)."""
    from relaydesk.channels.sandbox.knobs import KnobsUpdate
    from relaydesk.channels.sandbox.runtime import get_emulator
    from relaydesk.core.db import session_scope
    from relaydesk.messaging import tasks
    from relaydesk.messaging.models import MessageEvent
    from relaydesk.messaging.webhooks import parse_status
    from relaydesk.messaging.writer import write_batch

    get_emulator().control.update(KnobsUpdate(status_delay_ms=600_000))
    with session_scope() as session:
        from relaydesk.messaging import service

        message_id = service.send(
            session, service.SendRequest(to="+48600100607", body="wyścig"), deliver_inline=True
        ).id
    from relaydesk.messaging import delivery

    assert delivery.deliver(message_id).state == "submitted"
    sid = db.scalar(select(Message.sid).where(Message.id == message_id))
    with session_scope() as session:  # the callback lost the race: stored as an orphan
        session.add(
            MessageEvent(sid=sid, status="delivered", payload={"MessageSid": sid}, applied=False)
        )
    assert db.scalar(select(Message.status).where(Message.id == message_id)) == "queued"
    tasks.sweep()
    assert db.scalar(select(Message.status).where(Message.id == message_id)) == "delivered"
    write_batch([parse_status({"MessageSid": sid, "MessageStatus": "delivered"}, None)])
    assert db.scalar(select(Message.status).where(Message.id == message_id)) == "delivered"


def test_planner_statistics_are_refreshed(
    server: Any, twilio_post: Callable[..., httpx.Response]
) -> None:
    from sqlalchemy import text

    from relaydesk.core.db import get_engine
    from relaydesk.maintenance import refresh_planner_statistics
    from tests.conftest import BACKEND

    for i in range(3):
        twilio_post(
            "/twilio/inbound",
            {
                "MessageSid": f"SM{i:032x}",
                "From": "+48600100610",
                "To": "+15005550006",
                "Body": "statystyki",
            },
        )
    refresh_planner_statistics()
    if BACKEND == "sqlite":
        with get_engine().connect() as conn:
            tables = {row[0] for row in conn.execute(text("SELECT tbl FROM sqlite_stat1"))}
        assert "messages" in tables


class PeriodicOnly:
    """The part of huey a scheduler uses: the jobs due now, and where queued ones go."""

    name = "relaydesk"  # the live queue's huey

    def __init__(self, due: list[Any]) -> None:
        self.due = due
        self.queued: list[str] = []

    def read_schedule(self, now: Any) -> list[Any]:
        return []

    def read_periodic(self, now: Any) -> list[Any]:
        return self.due

    def enqueue(self, task: Any) -> None:
        self.queued.append(task.name)


@pytest.mark.parametrize("seconds", [60, 1])
def test_sweeps_run_every_sweep_seconds_and_other_periodic_jobs_keep_their_time(
    monkeypatch: pytest.MonkeyPatch, seconds: int
) -> None:
    from relaydesk.core import tasks
    from relaydesk.core.config import get_settings

    huey = tasks.get_huey()  # the live queue's
    # 05:07 UTC: only the every-minute jobs (the sweeps) are due; at 02:00 more are.
    sweeps = sorted(task.name for task in huey.read_periodic(datetime(2026, 1, 1, 5, 7)))
    due_at_two = huey.read_periodic(datetime(2026, 1, 1, 2, 0))
    others = sorted({task.name for task in due_at_two} - set(sweeps))
    assert "messaging.sweep" in sweeps and "campaigns.sweep" in sweeps
    assert others == ["maintenance.sessions"]
    # Bulk work has its own schedule, run by the bulk queue's workers.
    bulk = tasks.get_huey(tasks.BULK)
    bulk_at_two = sorted(task.name for task in bulk.read_periodic(datetime(2026, 1, 1, 2, 0)))
    assert bulk_at_two == ["news.digests", "search.sweep", "voicebot.daily_sync"]
    assert "news.digests" not in sweeps

    queued: list[str] = []
    monkeypatch.setattr(tasks, "enqueue", lambda name, *args, **kw: queued.append(name))
    monkeypatch.setattr(get_settings(), "sweep_seconds", seconds)
    stop = threading.Event()
    stop.set()  # the scheduler's loop sleeps on this flag: no waiting in the test
    fake = PeriodicOnly(due_at_two)
    scheduler = tasks.SweepScheduler(huey=fake, stop_flag=stop, interval=1, periodic=True)
    scheduler.loop(datetime(2026, 1, 1, 2, 0))
    if seconds == 60:
        # huey's own minute check, unchanged: everything due at 02:00, sweeps included.
        assert sorted(fake.queued) == sorted(sweeps + others)
    else:
        assert sorted(fake.queued) == others  # the sweeps come from the faster loop
    time.sleep(1.1)
    scheduler.loop(datetime(2026, 1, 1, 2, 0, 1))
    # (The suite's live server may queue other jobs meanwhile: only sweeps count here.)
    assert sorted(q for q in queued if q in sweeps) == ([] if seconds == 60 else sweeps)


def test_an_idle_worker_wakes_when_this_process_queues_a_job(tmp_path: Path) -> None:
    """A job queued in this process does not wait for the idle workers' next poll."""
    from huey import SqliteHuey

    from relaydesk.core.tasks import _Wakeup, _WakingWorker

    huey = SqliteHuey("wake-test", filename=str(tmp_path / "queue.db"))
    ran = threading.Event()

    @huey.task()  # type: ignore[misc]
    def job() -> None:
        ran.set()

    stop, wakeup = threading.Event(), _Wakeup()
    # Polls an hour apart: without the wake-up the job would not run during the test.
    worker = _WakingWorker(
        huey=huey, stop_flag=stop, default_delay=3600, max_delay=3600, backoff=1, wakeup=wakeup
    )

    def work() -> None:
        while not stop.is_set():
            worker.loop()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        wait_for(lambda: wakeup.sleeping == 1, timeout=30, what="the worker to find nothing")
        job()
        assert not ran.wait(0.2)  # queued, but the worker sleeps until its next poll
        wakeup.ring()
        assert ran.wait(60), "the worker did not wake up for the job"
        # A ring between the worker's empty poll and its sleep is not lost either.
        ran.clear()
        worker.seen = wakeup.rung
        wakeup.ring()
        started = time.monotonic()
        worker.sleep()
        assert time.monotonic() - started < 60
    finally:
        stop.set()
        wakeup.ring_all()
        thread.join(60)
    assert not thread.is_alive()


def test_queuing_a_job_rings_its_queue(server: Any) -> None:
    from relaydesk.core.tasks import BULK, LIVE, _wakeups, enqueue

    live, bulk = _wakeups[LIVE].rung, _wakeups[BULK].rung
    enqueue("messaging.sweep")
    assert (_wakeups[LIVE].rung, _wakeups[BULK].rung) == (live + 1, bulk)


def test_a_redis_queue_kept_as_a_list_becomes_a_priority_queue_in_its_order() -> None:
    """An installation upgraded from relaydesk before priorities has its queued jobs in
    a Redis list (huey's RedisHuey). The first start moves them, in their order, to the
    sorted set of PriorityRedisHuey, ahead of jobs queued from then on at the same
    priority; a job of higher priority still goes first, one of lower priority last."""
    from huey import PriorityRedisHuey, RedisHuey

    from relaydesk.core.tasks import LAST_PRIORITY, _queue_as_sorted_set
    from tests.processes import redis_server

    with redis_server() as url:
        old = RedisHuey("relaydesk", url=url, utc=True).storage
        for job in (b"old-1", b"old-2", b"old-3"):
            old.enqueue(job)
        new = PriorityRedisHuey("relaydesk", url=url, utc=True).storage
        _queue_as_sorted_set(url, new.queue_key)
        _queue_as_sorted_set(url, new.queue_key)  # the next start: nothing to move
        new.enqueue(b"due-later", LAST_PRIORITY)
        new.enqueue(b"new")
        new.enqueue(b"urgent", 1)
        assert new.queue_size() == 6
        taken = [new.dequeue() for _ in range(6)]
        assert taken == [b"urgent", b"old-1", b"old-2", b"old-3", b"new", b"due-later"]
        assert new.dequeue() is None
