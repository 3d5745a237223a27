"""Real relaydesk processes for crash tests: started, killed with SIGKILL, started again.

A deployment is what a user runs (but with its sweeps every second instead of every
minute, SWEEP_SECONDS=1): the default `relaydesk serve` (in-process worker, SQLite
queue), or `serve --no-worker` plus `relaydesk worker` with Redis. Its database is a
SQLite file in its data directory, or a new database in the suite's PostgreSQL cluster
when the suite runs on PostgreSQL.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import httpx

from tests.conftest import AUTH_TOKEN, BACKEND, missing, wait_for
from tests.pgserver import free_port

CLI = [sys.executable, "-m", "relaydesk.cli"]
ACCOUNT_SID = "AC" + "7e" * 16
OUR_NUMBER = "+15005550006"  # the sandbox's default sender: where customers write


def database_url(data_dir: Path) -> str:
    """A new, empty database for one deployment on the suite's backend."""
    if BACKEND != "postgresql":
        return f"sqlite:///{data_dir}/app.db"
    import psycopg

    parts = urlsplit(os.environ["DATABASE_URL"].replace("+psycopg", ""))
    name = f"crash_{secrets.token_hex(6)}"
    admin = f"host={parts.hostname} port={parts.port} user={parts.username} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # a fixed-shape generated name
    return f"postgresql+psycopg://{parts.username}@{parts.hostname}:{parts.port}/{name}"


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on loopback; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing("redis-server is not installed")
    assert binary is not None
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{port}/0"
        wait_for(lambda: _redis_up(port), timeout=30, what="redis-server")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _redis_up(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(port=port).ping())
    except redis.RedisError:
        return False


class Deployment:
    """One installation (data directory, database, port) whose processes can be killed."""

    def __init__(
        self,
        data_dir: Path,
        *,
        redis_url: str | None = None,
        standalone_sandbox: bool = False,
        setup: bool = True,
        **env: str,
    ) -> None:
        """Without `setup`, the data directory and database are left untouched (an
        installation about to be restored from a backup): no migration, no token."""
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.split = redis_url is not None
        # `relaydesk sandbox` as its own process: "Twilio" lives on while relaydesk is
        # down (its callbacks are lost), or goes down while relaydesk runs (an outage).
        self.sandbox_port = free_port() if standalone_sandbox else None
        self.sandbox_process: subprocess.Popen[bytes] | None = None
        if self.sandbox_port is not None:
            env = {"TWILIO_API_BASE_URL": f"http://127.0.0.1:{self.sandbox_port}", **env}
        self.env = {
            **os.environ,
            "DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url(data_dir),
            "PORT": str(self.port),
            "TWILIO_MODE": "sandbox",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "LOG_LEVEL": "INFO",
            # The sweeps that recover a crash run every second, not every minute: a test
            # waits for the recovery, never for the wall clock.
            "SWEEP_SECONDS": "1",
            **({"REDIS_URL": redis_url} if redis_url else {}),
            **env,
        }
        for name in ("WORKER_THREADS", "SANDBOX_STATUS_DELAY_MS"):
            if name not in env:
                self.env.pop(name, None)  # the suite's own tuning, not a user's default
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[IO[bytes]] = []
        self._twilio: httpx.Client | None = None
        self.token = ""
        if setup:
            self.run("migrate")
            made = self.run("token", "create", "crash-test", "--role", "operator")
            self.token = made.strip().splitlines()[-1]

    def run(self, *args: str) -> str:
        """Run a CLI command of this installation; its standard output."""
        done = subprocess.run(
            [*CLI, *args], env=self.env, check=True, capture_output=True, text=True, timeout=180
        )
        return done.stdout

    def _spawn(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        log = (self.data_dir / f"process{len(self.logs)}.log").open("wb")
        self.logs.append(log)
        return subprocess.Popen([*CLI, *args], env={**self.env, **env}, stdout=log, stderr=log)

    def start(self) -> None:
        """Start the processes (serve, or serve --no-worker + worker) and wait until up."""
        if self.sandbox_port is not None and self.sandbox_process is None:
            self.start_sandbox()
        commands = [["serve", "--no-worker"], ["worker"]] if self.split else [["serve"]]
        for args in commands:
            self.processes.append(self._spawn(*args))
        wait_for(self.up, timeout=90, what="the server to answer /health")

    def start_sandbox(self) -> None:
        """Start the standalone emulator (on the same data directory as before)."""
        assert self.sandbox_port is not None
        self.sandbox_process = self._spawn(
            "sandbox", "--port", str(self.sandbox_port), "--webhook-base", self.url
        )
        wait_for(
            lambda: _answers(f"{self.sandbox_base}/2010-04-01/Accounts/{ACCOUNT_SID}.json"),
            timeout=90,
            what="the standalone emulator",
        )

    def kill_sandbox(self) -> None:
        """SIGKILL the standalone emulator: Twilio is unreachable."""
        assert self.sandbox_process is not None
        self.sandbox_process.send_signal(signal.SIGKILL)
        self.sandbox_process.wait(timeout=30)
        self.sandbox_process = None

    @property
    def sandbox_base(self) -> str:
        """The emulator's REST API base (embedded under /sandbox/twilio, or its own server)."""
        if self.sandbox_port is not None:
            return f"http://127.0.0.1:{self.sandbox_port}"
        return f"{self.url}/sandbox/twilio"

    def up(self) -> bool:
        """True when the web process answers its health check."""
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL every process, as a power cut or the OOM killer would."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        self.processes.clear()

    def stop(self) -> None:
        """Stop the processes politely (end of the test)."""
        if self.sandbox_process is not None:
            self.processes.append(self.sandbox_process)
            self.sandbox_process = None
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.processes.clear()
        for log in self.logs:
            log.close()
        if self._twilio is not None:
            self._twilio.close()
            self._twilio = None

    def admin_client(self, name: str = "test-admin") -> httpx.Client:
        """An API client with a new administrator's token (to change settings)."""
        made = self.run("token", "create", name, "--role", "admin")
        token = made.strip().splitlines()[-1]
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def answer_with_ai(self, base_url: str) -> None:
        """Automatic answers from the AI at `base_url` (a fake model), with no debounce."""
        ai = {
            "enabled": True,
            "provider": "openai",
            "model": "gpt-4o-mini",
            "base_url": base_url,
            "api_key": "sk-restart",
        }
        with self.admin_client() as api:
            assert api.put("/api/automation/rules", json={"debounce_seconds": 0}).is_success
            assert api.put("/api/ai/config", json=ai).is_success

    def client(self) -> httpx.Client:
        """An API client with an operator token."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )

    def customer_writes(self, sender: str, body: str, to: str = OUR_NUMBER) -> str:
        """A customer's SMS (or, with whatsapp: addresses, WhatsApp message) arrives as
        Twilio delivers it: a signed POST /twilio/inbound; returns its MessageSid."""
        url, params, headers = self._inbound(sender, body, to)
        if self._twilio is None:
            self._twilio = httpx.Client(timeout=30)  # kept alive, as Twilio's connections are
        answer = self._twilio.post(url, data=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return params["MessageSid"]

    def _inbound(
        self, sender: str, body: str, to: str = OUR_NUMBER
    ) -> tuple[str, dict[str, str], dict[str, str]]:
        """A new inbound webhook as Twilio signs it: its URL, form and headers."""
        from relaydesk.channels.twilio.signature import sign

        url = f"{self.url}/twilio/inbound"
        params = {
            "MessageSid": "SM" + secrets.token_hex(16),
            "From": sender,
            "To": to,
            "Body": body,
            "NumMedia": "0",
        }
        return url, params, {"X-Twilio-Signature": sign(url, params, AUTH_TOKEN)}

    def customers_write_at_once(self, messages: dict[str, str]) -> None:
        """Several customers' SMS at the same moment (a burst after a campaign): each a
        signed POST /twilio/inbound on its own connection, all started together."""
        from concurrent.futures import ThreadPoolExecutor
        from threading import Barrier

        together = Barrier(len(messages))

        def write(sender: str, body: str) -> int:
            url, params, headers = self._inbound(sender, body)
            with httpx.Client(timeout=30) as twilio:
                together.wait(30)
                return twilio.post(url, data=params, headers=headers).status_code

        with ThreadPoolExecutor(len(messages)) as pool:
            codes = list(pool.map(write, messages, messages.values()))
        assert codes == [200] * len(messages), codes

    def emulator_messages(self) -> list[Any]:
        """The emulator's own Messages list (what "Twilio" accepted), through the twilio SDK."""
        from relaydesk.channels.twilio.gateway import make_client

        client = make_client(self.sandbox_base, ACCOUNT_SID, AUTH_TOKEN)
        return [m for m in client.messages.list(page_size=1000) if m.direction != "inbound"]

    def sent_to(self) -> Counter[str]:
        """How many messages the emulator accepted for each number."""
        return Counter(str(m.to) for m in self.emulator_messages())

    def logs_text(self) -> str:
        """Everything the processes printed (for failure messages)."""
        return "\n".join(
            path.read_text(errors="replace")[-4000:]
            for path in sorted(self.data_dir.glob("process*.log"))
        )


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(check: Any, timeout: float, what: str, deployment: Deployment) -> Any:
    """wait_for, with the processes' output in the failure message."""
    try:
        return wait_for(check, timeout=timeout, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- process output ---\n{deployment.logs_text()}") from None


def poll(seconds: float) -> None:
    """Pause between two looks at a running system (not a timing assertion)."""
    time.sleep(seconds)


class ScaledDeployment(Deployment):
    """The scale-out setup on loopback: PostgreSQL, Redis, a standalone emulator, several
    `relaydesk serve --no-worker` web processes (each on its own port, as behind a load
    balancer) and several `relaydesk worker` processes, each killable on its own."""

    def __init__(
        self,
        data_dir: Path,
        *,
        database: str,
        redis_url: str,
        webs: int = 2,
        workers: int = 2,
        **env: str,
    ) -> None:
        super().__init__(
            data_dir, redis_url=redis_url, standalone_sandbox=True, DATABASE_URL=database, **env
        )
        self.web_urls = [self.url] + [f"http://127.0.0.1:{free_port()}" for _ in range(webs - 1)]
        self.workers = workers
        self.named: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        """Start the emulator, every web process and every worker; wait until all answer."""
        if self.sandbox_process is None:
            self.start_sandbox()
        for i, url in enumerate(self.web_urls):
            port = url.rsplit(":", 1)[1]
            self.named[f"web{i}"] = self._spawn("serve", "--no-worker", PORT=port)
        for i in range(self.workers):
            self.named[f"worker{i}"] = self._spawn("worker")
        self.processes.extend(self.named.values())
        for url in self.web_urls:
            wait_for(lambda url=url: _answers(f"{url}/health"), timeout=90, what=f"{url}")

    def kill_one(self, name: str) -> None:
        """SIGKILL one named process (web0, web1, worker0, ...)."""
        process = self.named[name]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
