"""A worker process killed (SIGKILL) while the model is answering: one answer all the same."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pytest

from tests.conftest import wait_for
from tests.fakes import FakeOpenAI
from tests.pgserver import free_port

# Real relaydesk processes (serve, worker, CLI subprocesses): the e2e tier.
pytestmark = pytest.mark.e2e

SETUP = """
from relaydesk import migrations
from relaydesk.automation import settings as cfg
from relaydesk.core.db import session_scope
from relaydesk.messaging.ingest import store_inbound
from relaydesk.channels.twilio.parsing import InboundRecord

migrations.upgrade()
with session_scope() as s:
    cfg.save_rules(s, cfg.Rules(debounce_seconds=0), "test")
    ai = cfg.AIConfig(enabled=True, provider="openai", base_url={base_url!r})
    cfg.save_ai(s, ai, "test", api_key="sk-kill-test")
with session_scope() as s:
    store_inbound(s, [InboundRecord(
        sid="SM" + "9" * 32, channel="sms", contact_channel="sms",
        participant="+48600500001", from_addr="+48600500001", to_addr="+15005550006",
        body="Czy zdążycie na jutro?", media=[], num_segments=1, profile_name=None,
        opt_out=None, raw={{}},
    )])
"""


def _query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_a_killed_worker_leaves_the_answer_to_the_next_one(tmp_path: Path) -> None:
    release = threading.Event()
    fake = FakeOpenAI()

    def answer(body: dict[str, Any]) -> str:
        if len(fake.requests) == 1:
            release.wait(timeout=60)  # worker A dies while waiting for this answer
        return "Tak, zdążymy."

    fake.reply_with(answer)
    fake.start()
    db = tmp_path / "app.db"
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{db}",
        "PORT": str(free_port()),
        "AUTOMATION_LEASE_SECONDS": "1",
        # Nothing listens there: the answer is stored and its delivery retried later.
        "TWILIO_API_BASE_URL": f"http://127.0.0.1:{free_port()}",
    }
    workers: list[subprocess.Popen[bytes]] = []
    logs: list[IO[bytes]] = []

    def start_worker() -> None:
        logs.append((tmp_path / f"worker{len(workers)}.log").open("wb"))
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "relaydesk.cli", "worker"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=logs[-1],
            )
        )

    try:
        made = subprocess.run(
            [sys.executable, "-c", SETUP.format(base_url=fake.base_url)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert made.returncode == 0, made.stderr
        start_worker()
        wait_for(lambda: len(fake.requests) == 1, timeout=60, what="worker A asking the model")
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(timeout=10)
        release.set()
        [(state, lease)] = _query(db, "SELECT state, lease_until FROM automation_runs")
        assert state == "working"

        def lease_over() -> bool:
            now = datetime.now(UTC).replace(tzinfo=None)
            return datetime.fromisoformat(str(lease)).replace(tzinfo=None) < now

        wait_for(lease_over, timeout=30, what="worker A's lease to run out")
        start_worker()  # worker B's start-up sweep finds the abandoned run
        wait_for(
            lambda: _query(db, "SELECT state FROM automation_runs") == [("done",)],
            timeout=60,
            what="worker B to finish the run",
        )
        [(outcome, attempts)] = _query(db, "SELECT outcome, attempts FROM automation_runs")
        assert (outcome, attempts) == ("ai", 2)
        replies = _query(db, "SELECT body FROM messages WHERE source = 'ai'")
        assert replies == [("Tak, zdążymy.",)]
        assert len(fake.requests) == 2
    finally:
        release.set()
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                worker.wait(timeout=20)
        for log in logs:
            log.close()
        fake.stop()
