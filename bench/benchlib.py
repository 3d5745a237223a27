"""Shared helpers of the benchmarks: run `relaydesk serve` as a child process, read its CPU.

Not a benchmark itself; `webhook_ingest.py` and `inbox_queries.py` import it (run them as
`.venv/bin/python bench/NAME.py`, which puts this folder on sys.path).
"""

from __future__ import annotations

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
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import IO

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
    ) -> None:
        self.data_dir = data_dir
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
            [relaydesk_command(), self.command, *self._port_args(), *self.extra_args],
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
