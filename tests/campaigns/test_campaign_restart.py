"""A server killed with SIGKILL mid-campaign and started again: every recipient once.

The count comes from the sandbox emulator's own store (what "Twilio" accepted), on the
default SQLite queue and on Redis with a separate worker process.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.conftest import missing, wait_for
from tests.pgserver import free_port

RECIPIENTS = [f"+48600900{i:03d}" for i in range(40)]


def _emulator_counts(data_dir: Path) -> Counter[str]:
    path = data_dir / "sandbox.db"
    if not path.exists():
        return Counter()
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT to_addr FROM messages WHERE direction != 'inbound'").fetchall()
    return Counter(r[0] for r in rows)


@pytest.fixture(params=["sqlite-queue", "redis-queue"])
def queue_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Extra environment for the chosen task queue (Redis: a real redis-server)."""
    if request.param == "sqlite-queue":
        yield {}
        return
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        missing("redis-server is not installed")
        return
    port = free_port()
    redis = subprocess.Popen(
        [redis_bin, "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
    )
    try:
        yield {"REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    finally:
        redis.terminate()
        redis.wait(timeout=10)


def test_a_killed_server_resumes_the_campaign_without_repeating_anyone(
    tmp_path: Path, queue_env: dict[str, str]
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/app.db",
        "PORT": str(port),
        "CAMPAIGN_RATE_MPS": "20",
        "CAMPAIGN_LEASE_SECONDS": "1",
        # A message whose Twilio call the kill interrupted is reconciled after this.
        "SEND_CLAIM_LEASE_SECONDS": "2",
        "SANDBOX_STATUS_DELAY_MS": "0",
        **queue_env,
    }
    cli = [sys.executable, "-m", "relaydesk.cli"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True, timeout=120)
    made = subprocess.run(
        [*cli, "token", "create", "restart-test", "--role", "operator"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    token = made.stdout.strip().splitlines()[-1]
    logs: list[IO[bytes]] = []
    processes: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        logs.append((tmp_path / f"process{len(processes)}.log").open("wb"))
        process = subprocess.Popen([*cli, *args], env=env, stdout=logs[-1], stderr=logs[-1])
        processes.append(process)
        return process

    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def launch() -> list[subprocess.Popen[bytes]]:
        # With Redis: a web process without a worker, and a separate worker process.
        split = [start("serve", "--no-worker"), start("worker")] if queue_env else None
        group = split or [start("serve")]
        wait_for(up, timeout=60, what="the server")
        return group

    try:
        first = launch()
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
        created = client.post(
            "/api/multi-sms/batches", json={"numbers": "\n".join(RECIPIENTS), "body": "Raz!"}
        )
        assert created.status_code == 201, created.text
        batch_id = created.json()["id"]
        wait_for(
            lambda: sum(_emulator_counts(tmp_path).values()) >= 10,
            timeout=60,
            what="the first messages of the campaign",
        )
        for process in first:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        sent_before = sum(_emulator_counts(tmp_path).values())
        assert sent_before < len(RECIPIENTS), "the campaign finished before the kill"

        launch()
        wait_for(
            lambda: (
                client.get(f"/api/multi-sms/batches/{batch_id}").json()["status"] == "completed"
            ),
            timeout=120,
            what="the campaign to complete after the restart",
        )
        wait_for(
            lambda: sum(_emulator_counts(tmp_path).values()) >= len(RECIPIENTS),
            timeout=150,
            what="every recipient at the emulator",
        )
        counts = _emulator_counts(tmp_path)
        assert sorted(counts) == sorted(RECIPIENTS)
        assert set(counts.values()) == {1}, [n for n, c in counts.items() if c > 1]
        view = client.get(f"/api/multi-sms/batches/{batch_id}").json()
        assert view["counters"]["pending"] == 0 and view["counters"]["skipped"] == 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
        for log in logs:
            log.close()
