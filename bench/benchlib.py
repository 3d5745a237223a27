"""Shared helpers of the benchmarks: run `relaydesk serve` as a child process, read its CPU.

Not a benchmark itself; `webhook_ingest.py` and `inbox_queries.py` import it (run them as
`.venv/bin/python bench/NAME.py`, which puts this folder on sys.path).
"""

from __future__ import annotations

import asyncio
import http.client
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any
from urllib.parse import urlencode

from relaydesk.channels.twilio.signature import sign
from relaydesk.core.config import Settings

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
BENCH_AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
# One account for every process of a run, servers and standalone emulators alike whatever
# their DATA_DIR (each would otherwise generate its own); TWILIO_MODE keeps an Account SID
# in the environment from meaning live Twilio.
BENCH_ACCOUNT_SID = "AC" + "be" * 16
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def relaydesk_command() -> str:
    """The `relaydesk` console script of the interpreter running the benchmark."""
    for candidate in (
        Path(sys.executable).parent / "relaydesk",
        REPO / ".venv" / "bin" / "relaydesk",
    ):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("relaydesk")
    if found is None:
        raise SystemExit("cannot find the relaydesk command; run with .venv/bin/python")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    """This process's environment without any relaydesk setting, plus the benchmark's own."""
    names = {name.upper() for name in Settings.model_fields}
    names |= {f"{name}_FILE" for name in names}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env.update(
        {
            "DATA_DIR": str(data_dir),
            "PORT": str(port),
            "TWILIO_MODE": "sandbox",
            "TWILIO_ACCOUNT_SID": BENCH_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": BENCH_AUTH_TOKEN,
            "LOG_LEVEL": "WARNING",
            "SANDBOX_STATUS_DELAY_MS": "0",
        }
    )
    env.update(extra)
    return env


def run_cli(args: Sequence[str], env: dict[str, str], cwd: Path) -> str:
    """Run `relaydesk ARGS` to completion; its stdout, or SystemExit with its output."""
    proc = subprocess.run(
        [relaydesk_command(), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"relaydesk {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process `pid` (all its threads) from /proc."""
    return _stat_cpu(Path(f"/proc/{pid}/stat"))


def session_cpu(sid: int) -> float:
    """CPU seconds of every live process in session `sid` (a server and its children)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[3]) == sid:  # field 6 of stat: the session id
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def session_peak_rss_mb(sid: int) -> float:
    """The peak resident memory (VmHWM) of every live process in session `sid`, added
    up, in MB: an upper bound of the session's peak (the processes' peaks may not have
    come at the same moment)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) != sid:
                continue
            status = (stat.parent / "status").read_text()
        except OSError:
            continue  # the process ended while we looked
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])  # kB
    return total / 1024


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds per thread id of process `pid`."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = _stat_cpu(task / "stat")
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
    return out


def machine_busy_cpu() -> float:
    """CPU seconds all processes on the machine have used (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def _stat_cpu(path: Path) -> float:
    fields = path.read_text().rsplit(")", 1)[1].split()
    # After the ")" closing the command name: state is field 3, utime 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu(pid: int) -> float:
    """CPU seconds of process `pid` and all its descendants, including those that ended
    (a parent's cutime/cstime hold its waited-for children: PostgreSQL's backends)."""
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        child = int(stat.parent.name)
        parents[child] = int(fields[1])  # field 4 of stat: the parent's id
        # utime, stime, cutime, cstime: fields 14-17
        used[child] = sum(int(x) for x in fields[11:15]) / CLOCK_TICKS
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += used.get(current, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == current)
    return total


class Server:
    """`relaydesk serve` in its own session (Ctrl-C reaches only the benchmark)."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        env: dict[str, str],
        log_path: Path,
        extra_args: Sequence[str] = (),
        command: str = "serve",
        health: bool = True,
        wrapper: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir
        self.wrapper = list(wrapper)  # e.g. ["nice", "-n", "10"]
        self.extra_args = list(extra_args)
        self.command = command
        self.health = health  # GET /health; without it, started = the port accepts a connection
        self.port = port
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 120.0) -> None:
        """Start the server and wait until /health answers 200."""
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                *self.wrapper,
                relaydesk_command(),
                self.command,
                *self._port_args(),
                *self.extra_args,
            ],
            env=self.env,
            cwd=self.data_dir,  # no stray .env from the caller's directory
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited at start:\n{self.log_tail()}")
            if self.healthy():
                return
            time.sleep(0.2)
        self.stop()
        raise SystemExit(
            f"the server did not answer /health within {timeout:.0f} s:\n{self.log_tail()}"
        )

    def _port_args(self) -> list[str]:
        return ["--port", str(self.port)] if self.port else []

    def healthy(self) -> bool:
        """True when GET /health answers 200 (or, without /health, the port is open)."""
        if not self.port:
            return True  # a worker: running is all it can show
        if not self.health:
            try:
                socket.create_connection((HOST, self.port), timeout=2).close()
                return True
            except OSError:
                return False
        conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop gracefully (SIGINT, like Ctrl-C), then harder if it does not exit."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            for sig, wait in (
                (signal.SIGINT, timeout),
                (signal.SIGTERM, 10.0),
                (signal.SIGKILL, 10.0),
            ):
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    print(f"  server did not stop after {sig.name}; escalating", flush=True)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the server printed."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def separate_emulator(data_dir: Path, server_base: str, extra: dict[str, str]) -> Server:
    """The emulator as its own process (`relaydesk sandbox`), like Twilio: not under the
    server's GIL, its CPU apart. Points the server at it (TWILIO_API_BASE_URL in
    `extra`); its callbacks go to `server_base`. Not started yet."""
    port = free_port()
    emulator = Server(
        data_dir,
        port,
        server_env(data_dir, port, **extra),
        data_dir / "sandbox.log",
        extra_args=["--webhook-base", server_base],
        command="sandbox",
        health=False,
    )
    extra["TWILIO_API_BASE_URL"] = f"http://{HOST}:{port}"
    return emulator


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except OSError:
        return ""


def code_under_test() -> str:
    """Which relaydesk the server runs: the repository's commit (and whether src/ has
    uncommitted changes), or the folder it is imported from (e.g. via PYTHONPATH)."""
    import relaydesk

    package = Path(relaydesk.__file__).resolve().parent
    if package != REPO / "src" / "relaydesk":
        return f"relaydesk from {package} (version {relaydesk.__version__})"
    commit = _git("rev-parse", "--short", "HEAD") or "(no git)"
    changed = [line for line in _git("status", "--porcelain", "--", "src").splitlines() if line]
    dirty = f" + uncommitted changes in {len(changed)} file(s) of src/" if changed else ""
    return f"relaydesk {commit}{dirty}"


def environment() -> str:
    """One line naming what was measured: code, Python, SQLite, event loop, cores."""
    try:
        import uvloop

        loop = f"uvloop {getattr(uvloop, '__version__', '?')}"
    except ImportError:
        loop = "asyncio"
    return (
        f"{code_under_test()}; Python {sys.version.split()[0]}; "
        f"SQLite {sqlite3.sqlite_version}; client {loop}; {os.cpu_count()} CPUs"
    )


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so that `finally` blocks stop the servers."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


# --- PostgreSQL and Redis (--postgresql, --redis) ----------------------------------------


class Backing:
    """A throwaway PostgreSQL cluster (tests/pgserver.py) and/or redis-server for a
    benchmark: a fresh database and an emptied Redis for every run, and their CPU."""

    def __init__(self, postgresql: bool, redis: bool) -> None:
        self.postgresql = postgresql
        self.redis = redis
        self.cluster: Any = None  # tests.pgserver.PgCluster
        self.redis_url: str | None = None
        self._redis: subprocess.Popen[bytes] | None = None
        self._databases = 0

    def start(self) -> None:
        """Start what was asked for; SystemExit when it is not installed."""
        if self.postgresql:
            if str(REPO) not in sys.path:
                sys.path.insert(0, str(REPO))
            from tests.pgserver import PgCluster, find_bindir

            bindir = find_bindir()
            if bindir is None:
                raise SystemExit("--postgresql: initdb/pg_ctl not found (/usr/lib/postgresql)")
            self.cluster = PgCluster(bindir)
            self.cluster.start()
        if self.redis:
            binary = shutil.which("redis-server")
            if binary is None:
                raise SystemExit("--redis: redis-server is not installed")
            port = free_port()
            self._redis = subprocess.Popen(
                [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            self.redis_url = f"redis://{HOST}:{port}/0"
            deadline = time.monotonic() + 30
            while not self._redis_up():
                if time.monotonic() > deadline or self._redis.poll() is not None:
                    self.stop()
                    raise SystemExit("--redis: redis-server did not start")
                time.sleep(0.1)

    def _redis_up(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.redis_url or "").ping())
        except redis.RedisError:
            return False

    def env(self) -> dict[str, str]:
        """DATABASE_URL of a new empty database and REDIS_URL of the emptied Redis (for
        one run); empty without --postgresql and --redis."""
        out: dict[str, str] = {}
        if self.cluster is not None:
            import psycopg

            self._databases += 1
            name = f"bench_{self._databases}"
            admin = f"host={HOST} port={self.cluster.port} user=postgres dbname=postgres"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")  # a fixed-shape generated name
            out["DATABASE_URL"] = f"postgresql+psycopg://postgres@{HOST}:{self.cluster.port}/{name}"
        if self.redis_url is not None:
            import redis

            redis.Redis.from_url(self.redis_url).flushall()
            out["REDIS_URL"] = self.redis_url
        return out

    def cpu(self) -> float:
        """CPU seconds PostgreSQL (all its processes) and Redis have used so far."""
        total = 0.0
        if self.cluster is not None:
            try:
                pid = int((self.cluster.root / "data" / "postmaster.pid").read_text().split()[0])
                total += tree_cpu(pid)
            except (OSError, ValueError, IndexError):
                pass
        if self._redis is not None:
            total += tree_cpu(self._redis.pid)
        return total

    def describe(self) -> str:
        """One line: which database and queue the runs use."""
        if self.cluster is not None:
            version = subprocess.run(
                [str(self.cluster.bindir / "postgres"), "--version"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            database = (
                f"PostgreSQL ({version or '?'}; throwaway cluster, fsync=off, "
                "synchronous_commit=off)"
            )
        else:
            database = "SQLite (DATA_DIR/app.db)"
        queue = "Redis (throwaway redis-server)" if self.redis_url else "SQLite files (huey)"
        return f"database {database}; job queue {queue}"

    def stop(self) -> None:
        """Stop and delete everything started."""
        if self._redis is not None:
            self._redis.terminate()
            try:
                self._redis.wait(10)
            except subprocess.TimeoutExpired:
                self._redis.kill()
                self._redis.wait(10)
            self._redis = None
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None


class PgConnection:
    """A psycopg connection (autocommit: every query sees the latest data) that takes the
    benchmarks' SQLite-style `?` placeholders, for reading relaydesk's tables."""

    def __init__(self, url: str) -> None:
        import psycopg

        self._conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        self._conn.autocommit = True

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The cursor of `sql` (fetchone, fetchall, iteration)."""
        return self._conn.execute(sql.replace("?", "%s"), list(params) if params else None)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def signed_post(port: int, path: str, params: dict[str, str]) -> bytes:
    """An HTTP/1.1 POST of `params` to `path` on HOST:port, signed with the benchmarks'
    auth token as Twilio signs its webhooks."""
    signature = sign(f"http://{HOST}:{port}{path}", params, BENCH_AUTH_TOKEN)
    form = urlencode(params).encode()
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {HOST}:{port}\r\n"
        "User-Agent: TwilioProxy/1.1\r\n"
        "Accept: */*\r\n"
        "Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"
        f"X-Twilio-Signature: {signature}\r\n"
        f"Content-Length: {len(form)}\r\n"
        "\r\n"
    ).encode()
    return head + form


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, whether the connection must be closed) of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
        elif name == b"transfer-encoding":
            close = True  # not expected here; the body is not read, so drop the connection
    if length:
        await reader.readexactly(length)
    return status, close


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class KeepAlive:
    """Raw keep-alive HTTP/1.1 connections to HOST:port, as a lean load generator: at
    most `most` requests at once, each on an idle connection when there is one.

    A load generator on the same 2 cores as the server must cost little: httpx's
    AsyncClient took 4.5 ms of CPU per webhook, as much as relaydesk's automatic answer.
    """

    def __init__(self, port: int, most: int) -> None:
        self.port = port
        self.slots = asyncio.Semaphore(most)
        self.idle: list[Stream] = []

    async def post(
        self, data: bytes, timeout: float, started: Callable[[], None] | None = None
    ) -> int:
        """Send one request (`data`, whole) and read its answer: its status. `started` is
        called once a slot is free, just before sending. Raises TimeoutError, OSError or
        asyncio's stream errors when there is no answer."""
        async with self.slots:
            if started is not None:
                started()
            stream = self.idle.pop() if self.idle else None
            close = True
            try:
                for reused in (stream is not None, False):
                    if stream is None:
                        opening = asyncio.open_connection(HOST, self.port)
                        stream = await asyncio.wait_for(opening, timeout)
                    try:
                        stream[1].write(data)
                        status, close = await asyncio.wait_for(read_answer(stream[0]), timeout)
                        return status
                    except (ConnectionError, asyncio.IncompleteReadError):
                        if not reused:
                            raise
                        # An idle connection the server had closed (its keep-alive
                        # timeout) before this request: send it again on a new one.
                        stream[1].close()
                        stream = None
                raise AssertionError("unreachable: the last try returns or raises")
            finally:
                if stream is not None:
                    if close:
                        stream[1].close()
                    else:
                        self.idle.append(stream)

    def close(self) -> None:
        """Close the idle connections."""
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(pct / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def max_in_window(sorted_times: Sequence[float], width: float = 1.0) -> int:
    """The most events of already sorted times in any window of `width` seconds (sliding).

    Events exactly `width` apart count as different windows (with 1 us of tolerance, so
    that a perfectly paced series at R/s gives R, not R + 1 from rounding).
    """
    best, start = 0, 0
    for end, moment in enumerate(sorted_times):
        while sorted_times[start] <= moment - width + 1e-6:
            start += 1
        best = max(best, end - start + 1)
    return best
