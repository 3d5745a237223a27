"""Benchmark: faults injected into a real relaydesk deployment lose nothing and repeat nothing.

What it measures
    Each scenario runs --trials times, every trial on a fresh DATA_DIR (and, with
    --database postgresql, a fresh database), a real `relaydesk serve` started as a user
    would (migrate, an API token, default settings except the ones named below), and one
    table row per scenario at the end:
      trials        how many times the fault was injected
      acknowledged  what relaydesk took on: campaign recipients (the batch's valid
                    numbers), or webhooks answered 2xx
      stored        campaign: distinct recipients in the Twilio emulator's own store (what
                    "Twilio" accepted); webhooks: inbound messages (status callbacks:
                    message_events rows) in relaydesk's database, read directly, after
                    the restart and the spool's automatic replays (a webhook stored but
                    never answered, e.g. when the server died meanwhile, counts too)
      duplicates    campaign: messages the emulator accepted beyond one per recipient (or
                    for numbers outside the list); webhooks: a MessageSid stored more than once
      lost          campaign: recipients the emulator never got a message for; webhooks:
                    answered 2xx but not stored (a poisoned webhook kept as a dead letter,
                    `relaydesk spool dead`, is not lost)
      time to recover  medians over the trials (the maximum is printed below the table):
                    "A / B" = A seconds until work went on again and B seconds until
                    everything was done, both from the moment the fault ended (a killed
                    server spawned again, Redis started again, the database lock released)
    The goal is 0 lost and 0 duplicates in every row. Under the table, each row's maxima
    and counts: webhooks not acknowledged (no connection, timed out, 5xx, 4xx), stored
    though not acknowledged, went through the spool, the slowest 2xx answer, messages
    sent while Redis was down, and the like. Each trial also prints one line as it ends.

The scenarios
    campaign-kill  A campaign of --recipients numbers (default 2,000) created with
        POST /api/multi-sms/batches (CAMPAIGN_RATE_MPS=--rate, default 75;
        CAMPAIGN_MAX_RECIPIENTS=--recipients), the Twilio emulator as its own process
        (`relaydesk sandbox`, SANDBOX_LATENCY_MS=--latency-ms) so that what it accepted
        survives, and TWILIO_API_BASE_URL pointing at it. Once a random share (5-90%) of
        the recipients is at the emulator, the server's whole process group gets SIGKILL;
        it is started again on the same DATA_DIR and port and the benchmark waits for the
        batch to be `completed` with nothing pending or sending. A thread reads the batch
        through the API all the time and counts every answer that said `completed` while
        a recipient had no outcome (pending or sending, or fewer recipients at the
        emulator than the counters claim): "completed early", must be 0.
        Recover A: spawn -> the first message the emulator accepted after it (sending
        again); B: spawn -> the batch seen `completed`.
    webhook-kill  --webhooks signed inbound webhooks (default 5,000; unique MessageSids,
        Twilio's parameters, X-Twilio-Signature computed as Twilio does) sent at
        --webhook-rate per second (default 500), each at its moment whether earlier ones
        were answered or not, over keep-alive connections (at most --connections), each
        answer awaited at most --timeout s (15, Twilio's). At a random moment (10-50%
        of the burst) the server gets SIGKILL and is started again while the burst goes
        on. Webhooks sent while it is down get no answer: they are not acknowledged, so
        not lost, and they are not sent again (Twilio does not retry) but counted.
        Recover A: spawn -> the first webhook answered 2xx again; B: spawn -> every
        webhook acknowledged before the kill in the database (read from the outside)
        and the spool empty.
    answer-kill  The classic auto-reply on (debounce 0, the loop guard at its maximum)
        and --answers signed inbound webhooks (default 600), each from a customer of its
        own, at --answer-rate per second (default 40, above what one server answers on 2
        cores, so that runs and answers are in every stage when the kill comes), the
        emulator as its own process as in campaign-kill. At a random moment (20-60% of
        the burst) the server gets SIGKILL and is started again while the burst goes
        on. acknowledged: customers whose webhook was answered 2xx; stored: those of them
        with an answer at the emulator (its own store); duplicates: answers beyond one
        per customer; lost: acknowledged customers without one (a run or an answer cut
        off by the kill is the sweeps' to find: a pending run a minute after it was
        made). Recover A: spawn -> the first webhook answered 2xx again; B: spawn ->
        every acknowledged customer answered.
    db-lock  Webhooks at --stream-rate per second (default 50) for 3 s, then another
        process takes the database's write lock for a random 10-30 s (--lock; SQLite:
        BEGIN IMMEDIATE on app.db; PostgreSQL: LOCK TABLE messages, message_events IN
        EXCLUSIVE MODE) while they keep coming, then 5 s more. Webhooks the server cannot
        store go to its disk spool; nothing is set that a user would not set, so the
        benchmark waits (at most --wait s) for the server's own replay of the spool. (On
        PostgreSQL relaydesk's writes wait for the lock; an answer that comes later than
        --timeout is no acknowledgement.)
        Recover: lock released -> every webhook acknowledged before the release in the
        database (read from the outside every 0.25 s) and the spool empty.
    redis-restart  The campaign of campaign-kill in Redis mode: `serve --no-worker` plus
        `relaydesk worker` with REDIS_URL of a real redis-server without persistence.
        Once a random share (10-70%) is at the emulator, Redis is stopped (SIGTERM) for
        a random 3-8 s and started again on the same port, empty.
        Recover A: Redis started again -> the first new message at the emulator;
        B: -> the batch seen `completed` (both 0 when it completed while Redis was down).
    poisoned  The db-lock stream with one webhook in 25 replaced by a signed webhook that
        cannot be stored as it is (an ErrorCode of 23 and of 5,000 digits, a 20-digit
        NumSegments, NUL bytes in Body, From and MessageStatus, a 5,000-character
        ProfileName, a 500-character MessagingServiceSid), some of them during the lock
        so that they land in the spool. Each poisoned webhook must end up stored within
        the columns' bounds or listed by `relaydesk spool dead`, once, and every good one
        stored. Recover: lock released -> every webhook acknowledged before the release
        stored (a poisoned one stored or a dead letter) and the spool empty.

Checks (exit status 1 if any fails)
    lost 0 and duplicates 0 in every row; campaigns completed in every trial and never
    said `completed` early; poisoned webhooks stored within bounds and never both stored
    and a dead letter; no webhook still waiting in the spool at the end; no signed
    webhook refused with 4xx. A failed trial keeps its data directory (logs, app.db,
    spool, the emulator's sandbox.db) and, on PostgreSQL, the databases.

    The checks do fail where they should: on the revision before campaigns survived a
    SIGKILL (3b55612^) campaign-kill finds "completed early" and lost recipients, and on
    the one before the per-record spool (b3ec3a5^) poisoned finds acknowledged webhooks
    stuck behind a poisoned one (run an exported revision with PYTHONPATH, as below).

Run (the default, 10 trials of each SIGKILL scenario and 3 of the others on SQLite, takes
about 15 minutes on 2 cores):

    .venv/bin/python bench/faults.py
    .venv/bin/python bench/faults.py --trials 2 --recipients 300 --webhooks 1000  # quick
    .venv/bin/python bench/faults.py --scenarios campaign-kill,redis-restart --seed 7
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/faults.py --database postgresql

With --database postgresql, DATABASE_URL names a server on which the benchmark may
create (and drop, unless --keep) one database per trial. Another revision of relaydesk:

    mkdir -p /tmp/rev && git archive 3b55612^ src | tar -x -C /tmp/rev && \
        PYTHONPATH=/tmp/rev/src .venv/bin/python bench/faults.py --scenarios campaign-kill
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlalchemy import bindparam, create_engine, make_url, text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

from benchlib import (
    BENCH_ACCOUNT_SID,
    HOST,
    KeepAlive,
    Server,
    environment,
    exit_on_sigterm,
    free_port,
    relaydesk_command,
    run_cli,
    server_env,
    signed_post,
)
from campaign_rate import MAX_INPUT_CHARS, connect_ro, recipient_numbers
from relaydesk.channels.twilio.segments import count_segments
from seed import INBOUND_SENTENCES, OUR_ADDRESS, make_body

SCENARIOS = (
    "campaign-kill",
    "webhook-kill",
    "answer-kill",
    "db-lock",
    "redis-restart",
    "poisoned",
)
KILL_SCENARIOS = ("campaign-kill", "webhook-kill", "answer-kill")
RESUMES = ("campaign-kill", "webhook-kill", "answer-kill", "redis-restart")  # "A / B" recovery
BODY = "Promocja -20% na wszystko do niedzieli! Kod RABAT20. Odpisz STOP, aby zrezygnowac."
CUSTOMERS = [f"+4851{i:07d}" for i in range(500)]
NO_ANSWER, TIMED_OUT = 0, -1  # an answer's status when there was none
LOCK_LEAD, LOCK_TAIL = 3.0, 5.0  # stream seconds before the lock and after its release
POISON_EVERY = 25
SETTLE = 3.0  # seconds to wait for late duplicates before counting
SID = re.compile(r"SM[0-9a-f]{32}")
FINAL = ("completed", "failed", "canceled")


# --- results -------------------------------------------------------------------------


@dataclass
class Trial:
    """What one injected fault did."""

    acknowledged: int = 0
    stored: int = 0
    duplicates: int = 0
    lost: int = 0
    resumed: float | None = None  # fault over -> work going on again
    recovered: float | None = None  # fault over -> everything done
    slowest: float | None = None  # the longest wait for a webhook's 2xx, in seconds
    moment: str = ""  # when the fault struck
    notes: Counter[str] = field(default_factory=Counter)  # scenario-specific counts
    failures: list[str] = field(default_factory=list)


@dataclass
class Row:
    """The trials of one scenario."""

    scenario: str
    trials: list[Trial] = field(default_factory=list)

    def total(self, name: str) -> int:
        """The sum of a counter over the trials."""
        return sum(int(getattr(t, name)) for t in self.trials)

    def notes(self) -> Counter[str]:
        """Every trial's notes added up."""
        out: Counter[str] = Counter()
        for t in self.trials:
            out.update(t.notes)
        return out

    @property
    def failures(self) -> list[str]:
        """What failed, per trial."""
        return [f"trial {i + 1}: {f}" for i, t in enumerate(self.trials) for f in t.failures]


def check(trial: Trial, ok: bool, what: str) -> None:
    """Record a failed check of a trial."""
    if not ok:
        trial.failures.append(what)


# --- processes -----------------------------------------------------------------------


class KillableServer(Server):
    """benchlib's Server that can also die the hard way."""

    def kill(self) -> None:
        """SIGKILL the process and its whole session, as the OOM killer or a power cut would."""
        proc = self.proc
        if proc is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: pgid == pid
        proc.wait(timeout=30)
        self.stop()  # the process is gone: this only closes the log


class Databases:
    """A fresh database per trial: a SQLite file in DATA_DIR, or a new PostgreSQL database."""

    def __init__(self, kind: str) -> None:
        self.created: list[str] = []
        self.admin: URL | None = None
        if kind == "postgresql":
            given = os.environ.get("DATABASE_URL", "")
            if not given.startswith("postgresql"):
                raise SystemExit("--database postgresql needs DATABASE_URL=postgresql+psycopg://…")
            self.admin = make_url(given).set(drivername="postgresql+psycopg", database="postgres")

    def create(self, data_dir: Path) -> str:
        """The URL of an empty database for one deployment."""
        if self.admin is None:
            return f"sqlite:///{data_dir}/app.db"
        name = f"relaydesk_faults_{secrets.token_hex(5)}"
        self._admin_sql(f'CREATE DATABASE "{name}"')  # a generated, fixed-shape name
        self.created.append(name)
        return self.admin.set(database=name).render_as_string(hide_password=False)

    def drop_all(self, keep: bool) -> None:
        """Drop the databases made for the trials, or say where they are."""
        if keep:
            if self.created:
                print(f"databases kept: {', '.join(self.created)}")
            return
        for name in self.created:
            try:
                self._admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:  # cleaning up must not hide the results
                print(f"  could not drop database {name}: {exc}")

    def _admin_sql(self, sql: str) -> None:
        assert self.admin is not None
        engine = create_engine(self.admin, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(sql)
        finally:
            engine.dispose()


class Deployment:
    """One installation (DATA_DIR, database, port): its processes can be killed and restarted."""

    def __init__(
        self,
        root: Path,
        name: str,
        databases: Databases,
        *,
        emulator_env: dict[str, str] | None = None,
        redis_url: str | None = None,
        **extra: str,
    ) -> None:
        self.data_dir = root / name
        self.data_dir.mkdir(parents=True)
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        self.database_url = databases.create(self.data_dir)
        # server_env gives every process of the run (servers, emulators) one account
        # explicitly, not the credentials each DATA_DIR would generate.
        env = dict(extra)
        if not self.database_url.startswith("sqlite"):
            env["DATABASE_URL"] = self.database_url  # SQLite: the default file in DATA_DIR
        self.emulator: KillableServer | None = None
        if emulator_env is not None:
            # Like Twilio, the emulator is not the server: its own process and folder, so
            # that what it accepted outlives a killed server.
            twilio_dir = self.data_dir / "twilio"
            twilio_dir.mkdir()
            emulator_port = free_port()
            self.emulator = KillableServer(
                twilio_dir,
                emulator_port,
                server_env(twilio_dir, emulator_port, **emulator_env),
                self.data_dir / "sandbox.log",
                extra_args=["--webhook-base", self.base],
                command="sandbox",
                health=False,
            )
            env["TWILIO_API_BASE_URL"] = f"http://{HOST}:{emulator_port}"
        if redis_url is not None:
            env["REDIS_URL"] = redis_url
        self.env = server_env(self.data_dir, self.port, **env)
        self.server = KillableServer(
            self.data_dir,
            self.port,
            self.env,
            self.data_dir / "server.log",
            extra_args=["--no-worker"] if redis_url else [],
        )
        self.worker: KillableServer | None = None
        if redis_url is not None:
            log = self.data_dir / "worker.log"
            self.worker = KillableServer(self.data_dir, 0, self.env, log, command="worker")
        run_cli(["migrate"], self.env, self.data_dir)
        made = run_cli(["token", "create", "faults", "--role", "operator"], self.env, self.data_dir)
        self.token = made.strip().splitlines()[-1]
        self.engine = create_engine(self.database_url, poolclass=NullPool)

    @property
    def sandbox_db(self) -> Path:
        """The standalone emulator's store."""
        return self.data_dir / "twilio" / "sandbox.db"

    def start(self) -> None:
        """Start what is not running: the emulator, the server, the worker."""
        if self.emulator is not None and self.emulator.proc is None:
            self.emulator.start()
        if self.server.proc is None:
            self.server.start()
        if self.worker is not None and self.worker.proc is None:
            self.worker.start()

    def kill(self) -> None:
        """SIGKILL relaydesk (server and worker); the emulator, like Twilio, lives on."""
        self.server.kill()
        if self.worker is not None:
            self.worker.kill()

    def stop(self) -> None:
        """Stop every process politely (end of the trial)."""
        for process in (self.worker, self.server, self.emulator):
            if process is not None:
                process.stop()
        self.engine.dispose()

    def client(self) -> httpx.Client:
        """An API client with an operator token."""
        return httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )

    @contextmanager
    def database_locked(self) -> Iterator[None]:
        """Another process holds the database's write lock until the block ends."""
        if self.database_url.startswith("sqlite"):
            program, target = HOLD_SQLITE_LOCK, str(self.data_dir / "app.db")
        else:
            program = HOLD_POSTGRES_LOCK
            target = self.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        holder = subprocess.Popen(
            [sys.executable, "-c", program],
            env={**os.environ, "LOCK_TARGET": target},  # not argv: `ps` shows that to all
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdin is not None and holder.stdout is not None
        try:
            if holder.stdout.readline().strip() != "locked":
                raise SystemExit("the lock holder could not lock the database")
            yield
            holder.stdin.write("release\n")
            holder.stdin.flush()
            if holder.stdout.readline().strip() != "released":
                raise SystemExit("the lock holder did not release the database")
        finally:
            holder.stdin.close()
            with suppress(subprocess.TimeoutExpired):
                holder.wait(timeout=30)
            if holder.poll() is None:
                holder.kill()
                holder.wait()


# Run by another interpreter: it holds the write lock until a line arrives on stdin.
HOLD_SQLITE_LOCK = """
import os, sqlite3, sys
conn = sqlite3.connect(os.environ["LOCK_TARGET"], isolation_level=None, timeout=120)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
print("released", flush=True)
"""
HOLD_POSTGRES_LOCK = """
import os, psycopg, sys
conn = psycopg.connect(os.environ["LOCK_TARGET"])
conn.execute("LOCK TABLE messages, message_events IN EXCLUSIVE MODE")
print("locked", flush=True)
sys.stdin.readline()
conn.rollback()
print("released", flush=True)
"""


class RedisServer:
    """A redis-server without persistence on a fixed port, which can be stopped and restarted."""

    def __init__(self, log_dir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (needed by redis-restart)")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        self.log_path = log_dir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until it answers PING."""
        # No persistence: a restart forgets every queued job, as a crash of a cache would.
        command = [self.binary, "--port", str(self.port), "--bind", HOST]
        command += ["--save", "", "--appendonly", "no"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._pong():
                return
            time.sleep(0.05)
        raise SystemExit("redis-server did not answer within 30 s")

    def stop(self) -> None:
        """Stop it as `systemctl stop` would (SIGTERM); with no persistence it forgets all."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _pong(self) -> bool:
        try:
            return bool(redis.Redis(host=HOST, port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False


class Background:
    """A fault running on its own thread while the main one sends or waits."""

    def __init__(self, action: Callable[[], None]) -> None:
        self.error: BaseException | None = None
        self._action = action
        self._thread = threading.Thread(target=self._run, name="fault", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._action()
        except BaseException as exc:  # handed to the main thread by join()
            self.error = exc

    def join(self) -> None:
        """Wait for the fault's end; raise what it raised."""
        self._thread.join()
        if self.error is not None:
            raise self.error


def sleep_until(moment: float) -> None:
    """Sleep until time.monotonic() reaches `moment`."""
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


# --- webhooks ------------------------------------------------------------------------


@dataclass
class Webhook:
    """One signed request, ready to write to a socket."""

    sid: str
    kind: str  # inbound | status
    data: bytes
    poison: str = ""  # what is wrong with it; "" for a good one


def new_sid(rng: random.Random) -> str:
    """A Twilio-looking message SID."""
    return f"SM{uuid.UUID(int=rng.getrandbits(128)).hex}"


def inbound_params(sid: str, rng: random.Random) -> dict[str, str]:
    """Twilio's parameters of an inbound SMS from one of our customers."""
    body = make_body(rng, INBOUND_SENTENCES, min_len=2, max_len=320)
    return {
        "ToCountry": "US",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "FromCountry": "PL",
        "To": OUR_ADDRESS,
        "NumSegments": str(count_segments(body).segments),
        "MessageSid": sid,
        "AccountSid": BENCH_ACCOUNT_SID,
        "From": rng.choice(CUSTOMERS),
        "ApiVersion": "2010-04-01",
    }


def status_params(sid: str, status: str) -> dict[str, str]:
    """Twilio's parameters of a status callback."""
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": BENCH_ACCOUNT_SID,
        "From": OUR_ADDRESS,
        "To": CUSTOMERS[0],
        "ApiVersion": "2010-04-01",
    }


def good_webhook(port: int, rng: random.Random) -> Webhook:
    """A signed inbound webhook with a new MessageSid."""
    sid = new_sid(rng)
    return Webhook(sid, "inbound", signed_post(port, "/twilio/inbound", inbound_params(sid, rng)))


# (label, kind, how the parameters are spoiled) of every poisoned webhook.
POISONS: list[tuple[str, str, Callable[[dict[str, str]], None]]] = [
    ("status ErrorCode of 23 digits", "status", lambda p: p.update(ErrorCode="9" * 23)),
    ("status ErrorCode of 5,000 digits", "status", lambda p: p.update(ErrorCode="9" * 5000)),
    (
        "status MessageStatus with NUL, 1,000 chars",
        "status",
        lambda p: p.update(MessageStatus="deliv\x00ered" * 100),
    ),
    ("inbound NumSegments of 20 digits", "inbound", lambda p: p.update(NumSegments="9" * 20)),
    ("inbound Body with NUL bytes", "inbound", lambda p: p.update(Body="ab\x00cd\x00")),
    ("inbound From with a NUL byte", "inbound", lambda p: p.update(From="+48511\x000001")),
    (
        "inbound ProfileName of 5,000 chars",
        "inbound",
        lambda p: p.update(ProfileName="Ż" * 5_000),
    ),
    (
        "inbound MessagingServiceSid of 500 chars",
        "inbound",
        lambda p: p.update(MessagingServiceSid="MG" + "f" * 498),
    ),
]


def poisoned_webhook(port: int, rng: random.Random, number: int) -> Webhook:
    """The `number`-th poisoned webhook (the kinds take turns), correctly signed."""
    label, kind, spoil = POISONS[number % len(POISONS)]
    sid = new_sid(rng)
    params = inbound_params(sid, rng) if kind == "inbound" else status_params(sid, "undelivered")
    spoil(params)
    return Webhook(sid, kind, signed_post(port, f"/twilio/{kind}", params), poison=label)


@dataclass
class Answers:
    """Per webhook: the HTTP status (NO_ANSWER, TIMED_OUT), when it was sent and when the
    answer came (time.monotonic())."""

    status: list[int]
    sent: list[float]
    at: list[float]

    @classmethod
    def empty(cls, count: int) -> Answers:
        """Room for `count` answers, none arrived yet (filled in while sending)."""
        return cls([NO_ANSWER] * count, [0.0] * count, [0.0] * count)

    def slowest(self) -> float:
        """The longest wait for a 2xx answer, in seconds."""
        waits = [
            at - sent
            for s, sent, at in zip(self.status, self.sent, self.at, strict=True)
            if 200 <= s < 300
        ]
        return max(waits, default=0.0)

    def acknowledged(self, hooks: list[Webhook], until: float = float("inf")) -> list[Webhook]:
        """The webhooks answered 2xx (before `until`)."""
        return [
            h
            for h, s, at in zip(hooks, self.status, self.at, strict=True)
            if 200 <= s < 300 and at < until
        ]

    def first_ack_after(self, moment: float) -> float | None:
        """When the first 2xx after `moment` came."""
        times = [a for a, s in zip(self.at, self.status, strict=True) if 200 <= s < 300]
        later = [a for a in times if a >= moment]
        return min(later) if later else None


async def _send_paced(
    port: int,
    hooks: list[Webhook],
    rate: float,
    connections: int,
    timeout: float,
    t0: float,
    answers: Answers,
) -> None:
    # Like Twilio, each webhook leaves at its moment whether earlier ones were answered
    # or not (a fixed set of connections would hold the stream back when answers slow
    # down); idle keep-alive connections are reused, at most `connections` at a time.
    pool = KeepAlive(port, connections)

    async def one(i: int) -> None:
        await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))

        def started() -> None:
            answers.sent[i] = time.monotonic()

        try:
            status = await pool.post(hooks[i].data, timeout, started)
        except TimeoutError:
            status = TIMED_OUT  # Twilio gives up after 15 s: not acknowledged
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            status = NO_ANSWER  # refused or reset: the server is down
        # The time first: another thread reading a 2xx must find its moment.
        answers.at[i] = time.monotonic()
        answers.status[i] = status

    await asyncio.gather(*(one(i) for i in range(len(hooks))))
    pool.close()


def send_paced(
    port: int,
    hooks: list[Webhook],
    args: argparse.Namespace,
    rate: float,
    t0: float,
    answers: Answers | None = None,
) -> Answers:
    """Send `hooks` in order, the i-th at t0 + i / rate, like Twilio: one try each.

    The answers are filled in as they come (another thread may read them meanwhile).
    """
    answers = answers or Answers.empty(len(hooks))
    asyncio.run(_send_paced(port, hooks, rate, args.connections, args.timeout, t0, answers))
    return answers


# --- reading the stores --------------------------------------------------------------


def stored_counts(engine: Engine, kind: str) -> Counter[str]:
    """How often each SID is stored: inbound messages, or status callbacks' events."""
    sql = (
        "SELECT sid, count(*) FROM messages WHERE direction = 'inbound' GROUP BY sid"
        if kind == "inbound"
        else "SELECT sid, count(*) FROM message_events GROUP BY sid"
    )
    with engine.connect() as conn:
        return Counter({str(sid): int(n) for sid, n in conn.execute(text(sql))})


def unbounded(engine: Engine, inbound: list[str], status: list[str]) -> list[str]:
    """Poisoned SIDs stored with a value outside its column's sense (NUL, huge numbers)."""
    bad: list[str] = []
    with engine.connect() as conn:
        if inbound:
            rows = conn.execute(
                text(
                    "SELECT sid, num_segments, body, from_addr FROM messages WHERE sid IN :sids"
                ).bindparams(bindparam("sids", expanding=True)),
                {"sids": inbound},
            )
            for sid, segments, body, from_addr in rows:
                if not 1 <= int(segments) <= 100 or "\x00" in f"{body}{from_addr}":
                    bad.append(str(sid))
        if status:
            rows = conn.execute(
                text(
                    "SELECT sid, error_code, status FROM message_events WHERE sid IN :sids"
                ).bindparams(bindparam("sids", expanding=True)),
                {"sids": status},
            )
            for sid, code, state in rows:
                if (code is not None and not 0 < int(code) <= 99_999) or "\x00" in str(state):
                    bad.append(str(sid))
    return bad


def spool_files(data_dir: Path) -> list[Path]:
    """The files of DATA_DIR/spool holding webhooks that wait for the database."""
    folder = data_dir / "spool"
    files = [folder / "webhooks.jsonl", folder / "webhooks.replaying"]
    return files + sorted(folder.glob("webhooks.*.replaying"))


def spool_waiting(data_dir: Path) -> int:
    """Lines waiting in DATA_DIR/spool for the database (pending and work files)."""
    total = 0
    for path in spool_files(data_dir):
        with suppress(OSError):
            total += path.read_bytes().count(b"\n")
    return total


class SpoolWatch:
    """Notes every SID that passes through the spool (its files read every 0.2 s)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.seen: set[str] = set()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spool-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(0.2):
            self._look()

    def _look(self) -> None:
        for path in spool_files(self.data_dir):
            with suppress(OSError):
                self.seen.update(SID.findall(path.read_text("ascii", errors="replace")))

    def stop(self) -> set[str]:
        """Stop watching; the SIDs seen."""
        self._done.set()
        self._thread.join(timeout=10)
        self._look()
        return self.seen


def dead_letters(deployment: Deployment) -> Counter[str]:
    """SIDs that `relaydesk spool dead` lists, with how often (none in older versions)."""
    done = subprocess.run(
        [relaydesk_command(), "spool", "dead"],
        env=deployment.env,
        cwd=deployment.data_dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        if "No such command" in done.stderr:
            return Counter()  # a revision from before dead letters (PYTHONPATH=...)
        raise SystemExit(f"relaydesk spool dead failed:\n{done.stdout}{done.stderr}")
    return Counter(SID.findall(done.stdout))


def emulator_rows(sandbox_db: Path, since: float = 0.0) -> list[tuple[str, float]]:
    """(to, date_created) of every message the emulator accepted since `since` (Unix time)."""
    if not sandbox_db.exists():
        return []
    try:
        conn = connect_ro(sandbox_db)
    except sqlite3.Error:
        return []
    try:
        return [
            (str(to), float(at))
            for to, at in conn.execute(
                "SELECT to_addr, date_created FROM messages "
                "WHERE direction = 'outbound-api' AND date_created >= ?",
                (since,),
            )
        ]
    except sqlite3.Error:
        return []  # the emulator has not made its tables yet
    finally:
        conn.close()


# --- campaigns -----------------------------------------------------------------------


class BatchWatch:
    """Reads the batch through the API all the time; keeps what must never be seen."""

    def __init__(self, deployment: Deployment, batch_id: int, valid: int) -> None:
        self.deployment = deployment
        self.path = f"/api/multi-sms/batches/{batch_id}"
        self.valid = valid
        self.reads = 0
        self.early: list[str] = []  # "completed" while a recipient had no outcome
        self.last: dict[str, Any] = {}
        self.completed_at: float | None = None  # Unix time it was first seen completed
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batch-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self.deployment.client() as client:
            while not self._done.is_set():
                try:
                    answer = client.get(self.path, timeout=5)
                    view = answer.json() if answer.status_code == 200 else None
                except (httpx.HTTPError, ValueError):
                    view = None  # killed or starting
                if view is None:
                    self._done.wait(0.2)
                    continue
                self.reads += 1
                self._look(view)
                self.last = view
                self._done.wait(0.2)

    def _look(self, view: dict[str, Any]) -> None:
        if view["status"] != "completed":
            return
        counters = view["counters"]
        if counters["pending"] + counters["sending"]:
            self.early.append(f"completed with {counters}")
        elif self.completed_at is None:
            self.completed_at = time.time()
            # The counters say each recipient has an outcome; "Twilio" must agree.
            reached = {to for to, _ in emulator_rows(self.deployment.sandbox_db)}
            claimed = counters["sent"] + counters["failed"] + counters["skipped"]
            if len(reached) < counters["sent"] or claimed < self.valid:
                self.early.append(
                    f"completed with {counters} but {len(reached)} recipients at the emulator"
                )

    @property
    def completed(self) -> bool:
        """Seen completed with nothing pending or sending."""
        return self.completed_at is not None

    def stop(self) -> None:
        """Stop reading."""
        self._done.set()
        self._thread.join(timeout=10)


def campaign_env(args: argparse.Namespace) -> dict[str, str]:
    """relaydesk's settings for the campaign scenarios."""
    return {
        "CAMPAIGN_RATE_MPS": f"{args.rate:g}",
        "CAMPAIGN_MAX_RECIPIENTS": str(max(args.recipients, 250)),
    }


def emulator_env(args: argparse.Namespace) -> dict[str, str]:
    """The standalone emulator's settings: Twilio's latency, status callbacks at once."""
    return {"SANDBOX_LATENCY_MS": str(args.latency_ms), "SANDBOX_STATUS_DELAY_MS": "0"}


def start_campaign(deployment: Deployment, numbers: list[str]) -> BatchWatch:
    """Create the campaign through the API; a watch on it."""
    with deployment.client() as client:
        answer = client.post(
            "/api/multi-sms/batches", json={"numbers": "\n".join(numbers), "body": BODY}
        )
    if answer.status_code != 201:
        raise SystemExit(f"POST /api/multi-sms/batches: {answer.status_code} {answer.text[:500]}")
    created = answer.json()
    if created["valid"] != len(numbers):
        raise SystemExit(f"expected {len(numbers)} valid numbers: {created['invalid'][:3]}")
    return BatchWatch(deployment, int(created["id"]), int(created["valid"]))


def wait_for_share(deployment: Deployment, share: int, limit: float) -> None:
    """Wait until the emulator accepted `share` messages."""
    deadline = time.monotonic() + limit
    while len(emulator_rows(deployment.sandbox_db)) < share:
        if time.monotonic() > deadline:
            raise SystemExit(
                f"the emulator did not get {share} messages within {limit:.0f} s:\n"
                f"{deployment.server.log_tail()}"
            )
        time.sleep(0.05)


def follow_recovery(
    trial: Trial, deployment: Deployment, watch: BatchWatch, since: float, limit: float
) -> None:
    """After the fault: when the emulator got a message again, when the batch completed."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if trial.resumed is None:
            later = [at for _, at in emulator_rows(deployment.sandbox_db, since)]
            if later:
                trial.resumed = min(later) - since
        if watch.completed:
            assert watch.completed_at is not None
            trial.recovered = watch.completed_at - since
            return
        if watch.last.get("status") in FINAL or watch.last.get("status") == "paused":
            break  # failed, canceled or paused: it will not complete by itself
        time.sleep(0.1)
    last = watch.last
    check(
        trial,
        False,
        f"the campaign completed with every recipient done (it was {last.get('status')!r}, "
        f"{last.get('counters')}, after {limit:.0f} s at most)",
    )


def count_campaign(
    trial: Trial, deployment: Deployment, numbers: list[str], watch: BatchWatch
) -> None:
    """Compare the emulator's store with the list; the watch's findings."""
    time.sleep(SETTLE)  # a late duplicate (a retry) would show up meanwhile
    per_number = Counter(to for to, _ in emulator_rows(deployment.sandbox_db))
    wanted = set(numbers)
    trial.acknowledged = watch.valid
    trial.stored = sum(1 for n in numbers if per_number[n])
    trial.duplicates = sum(c - 1 for n, c in per_number.items() if n in wanted and c > 1)
    trial.duplicates += sum(c for n, c in per_number.items() if n not in wanted)
    trial.lost = len(numbers) - trial.stored
    trial.notes["API reads"] += watch.reads
    trial.notes["completed early"] += len(watch.early)
    trial.notes["failed (API)"] += int(watch.last.get("counters", {}).get("failed", 0))
    check(trial, not watch.early, f"never completed early: {watch.early[:2]}")
    check(trial, trial.lost == 0, f"lost {trial.lost} recipients")
    check(trial, trial.duplicates == 0, f"{trial.duplicates} duplicate messages")


def campaign_limit(args: argparse.Namespace) -> float:
    """How long a campaign may take after its fault before the trial gives up."""
    return float(3 * args.recipients / args.rate + 300)


def trial_campaign_kill(
    root: Path, number: int, args: argparse.Namespace, dbs: Databases, rng: random.Random
) -> Trial:
    """SIGKILL the default serve at a random moment of a campaign; restart; count."""
    trial = Trial()
    numbers = recipient_numbers(args.recipients)
    deployment = Deployment(
        root, f"campaign-kill-{number}", dbs, emulator_env=emulator_env(args), **campaign_env(args)
    )
    watch: BatchWatch | None = None
    try:
        deployment.start()
        watch = start_campaign(deployment, numbers)
        share = rng.randint(max(1, len(numbers) * 5 // 100), max(1, len(numbers) * 90 // 100))
        wait_for_share(deployment, share, campaign_limit(args))
        deployment.kill()
        at_kill = len(emulator_rows(deployment.sandbox_db))
        trial.moment = f"killed at {share}/{len(numbers)} sent ({at_kill} counting calls in flight)"
        since = time.time()
        deployment.start()
        follow_recovery(trial, deployment, watch, since, campaign_limit(args))
        count_campaign(trial, deployment, numbers, watch)
    finally:
        if watch is not None:
            watch.stop()
        deployment.stop()
    return trial


def trial_redis_restart(
    root: Path, number: int, args: argparse.Namespace, dbs: Databases, rng: random.Random
) -> Trial:
    """Stop Redis for a few seconds mid-campaign (serve --no-worker + worker); count."""
    trial = Trial()
    numbers = recipient_numbers(args.recipients)
    folder = root / f"redis-{number}"
    folder.mkdir(parents=True)
    redis = RedisServer(folder)
    redis.start()
    deployment: Deployment | None = None
    watch: BatchWatch | None = None
    try:
        deployment = Deployment(
            folder,
            "deployment",
            dbs,
            emulator_env=emulator_env(args),
            redis_url=redis.url,
            **campaign_env(args),
        )
        deployment.start()
        watch = start_campaign(deployment, numbers)
        share = rng.randint(max(1, len(numbers) * 10 // 100), max(1, len(numbers) * 70 // 100))
        wait_for_share(deployment, share, campaign_limit(args))
        down = rng.uniform(3.0, 8.0)
        stopped = time.time()
        redis.stop()
        time.sleep(down)
        since = time.time()
        redis.start()
        trial.moment = f"Redis down {down:.1f} s from {share}/{len(numbers)}"
        meanwhile = [at for _, at in emulator_rows(deployment.sandbox_db, stopped) if at < since]
        trial.notes["sent while Redis was down"] += len(meanwhile)
        follow_recovery(trial, deployment, watch, since, campaign_limit(args))
        if watch.completed_at is not None and watch.completed_at < since:
            # The dispatch under way needed no queue: nothing to recover from.
            trial.notes["completed while Redis was down"] += 1
            trial.resumed = trial.recovered = 0.0
        count_campaign(trial, deployment, numbers, watch)
    finally:
        if watch is not None:
            watch.stop()
        if deployment is not None:
            deployment.stop()
        redis.stop()
    return trial


# --- webhook scenarios ---------------------------------------------------------------


def wait_until_stored(
    deployment: Deployment, wanted: list[str], deadline: float, dead_ok: list[str]
) -> float | None:
    """Wait until every wanted SID is stored (or, for `dead_ok`, a dead letter) and the
    spool is empty; the time.monotonic() it happened, or None at `deadline`."""
    while True:
        stored = stored_counts(deployment.engine, "inbound")
        stored.update(stored_counts(deployment.engine, "status"))
        missing = [sid for sid in wanted if not stored[sid]]
        waiting = spool_waiting(deployment.data_dir)
        if not missing and not waiting:
            return time.monotonic()
        # Only poisoned webhooks missing: done if they are dead letters (asked last, as
        # it runs the CLI).
        only_poisoned = not waiting and set(missing) <= set(dead_ok)
        if only_poisoned and set(missing) <= set(dead_letters(deployment)):
            return time.monotonic()
        if time.monotonic() > deadline:
            return None
        time.sleep(0.25)


def count_webhooks(
    trial: Trial,
    deployment: Deployment,
    hooks: list[Webhook],
    answers: Answers,
    spooled: set[str],
) -> None:
    """Acknowledged, stored, lost, duplicates of the webhooks; poisoned ones apart."""
    acknowledged = answers.acknowledged(hooks)
    acked = {h.sid for h in acknowledged}
    stored = stored_counts(deployment.engine, "inbound")
    stored.update(stored_counts(deployment.engine, "status"))
    poisoned = [h for h in hooks if h.poison]
    dead = dead_letters(deployment) if poisoned else Counter()
    trial.acknowledged = len(acknowledged)
    trial.slowest = answers.slowest()
    trial.stored = sum(1 for h in hooks if stored[h.sid])
    trial.duplicates = sum(stored[h.sid] - 1 for h in hooks if stored[h.sid] > 1)
    trial.duplicates += sum(n - 1 for n in dead.values() if n > 1)
    trial.lost = sum(1 for sid in acked if not stored[sid] and not dead[sid])
    statuses = Counter(answers.status)
    trial.notes["not acknowledged"] += len(hooks) - len(acknowledged)
    trial.notes["no connection"] += statuses[NO_ANSWER]
    trial.notes["timed out (15 s)"] += statuses[TIMED_OUT]
    trial.notes["5xx"] += sum(n for s, n in statuses.items() if s >= 500)
    trial.notes["4xx"] += sum(n for s, n in statuses.items() if 400 <= s < 500)
    trial.notes["stored though not acknowledged"] += sum(
        1 for h in hooks if stored[h.sid] and h.sid not in acked
    )
    trial.notes["still in the spool"] += spool_waiting(deployment.data_dir)
    trial.notes["went through the spool"] += sum(1 for h in hooks if h.sid in spooled)
    check(trial, trial.lost == 0, f"lost {trial.lost} acknowledged webhooks")
    check(trial, trial.duplicates == 0, f"{trial.duplicates} webhooks stored twice")
    check(trial, not trial.notes["still in the spool"], "webhooks still waiting in the spool")
    good_4xx = sum(1 for h, s in zip(hooks, answers.status, strict=True) if 400 <= s < 500)
    check(trial, good_4xx == 0, f"{good_4xx} signed webhooks refused with 4xx")
    if not poisoned:
        return
    in_db = [h for h in poisoned if stored[h.sid]]
    trial.notes["poisoned sent"] += len(poisoned)
    trial.notes["poisoned acknowledged"] += sum(1 for h in poisoned if h.sid in acked)
    trial.notes["poisoned stored"] += len(in_db)
    trial.notes["poisoned dead letters"] += sum(1 for h in poisoned if dead[h.sid])
    through = sum(1 for h in poisoned if h.sid in spooled)
    trial.notes["poisoned through the spool"] += through
    if not through:
        trial.moment += " (no poisoned webhook reached the spool: the spool's path untried)"
    both = [h.poison for h in poisoned if stored[h.sid] and dead[h.sid]]
    check(trial, not both, f"stored and also a dead letter: {sorted(set(both))}")
    bad = unbounded(
        deployment.engine,
        [h.sid for h in in_db if h.kind == "inbound"],
        [h.sid for h in in_db if h.kind == "status"],
    )
    check(trial, not bad, f"{len(bad)} poisoned webhooks stored out of bounds")
    good_stored = sum(1 for h in hooks if not h.poison and h.sid in acked and stored[h.sid])
    good_acked = sum(1 for h in hooks if not h.poison and h.sid in acked)
    check(trial, good_stored == good_acked, f"good stored {good_stored}/{good_acked}")


def trial_webhook_kill(
    root: Path, number: int, args: argparse.Namespace, dbs: Databases, rng: random.Random
) -> Trial:
    """SIGKILL the server during a burst of signed webhooks; restart while it goes on."""
    trial = Trial()
    deployment = Deployment(root, f"webhook-kill-{number}", dbs)
    try:
        deployment.start()
        hooks = [good_webhook(deployment.port, rng) for _ in range(args.webhooks)]
        kill_at = rng.uniform(0.1, 0.5) * len(hooks) / args.webhook_rate
        marks: dict[str, float] = {}
        t0 = time.monotonic() + 0.5

        answers = Answers.empty(len(hooks))

        def fault() -> None:
            sleep_until(t0 + kill_at)
            deployment.kill()
            marks["restart"] = time.monotonic()
            deployment.start()
            # What was acknowledged before the kill is on disk: in the database already,
            # or in the spool until a replay.
            before = [h.sid for h in answers.acknowledged(hooks, until=marks["restart"])]
            done = wait_until_stored(deployment, before, marks["restart"] + args.wait, [])
            trial.recovered = None if done is None else done - marks["restart"]

        spool = SpoolWatch(deployment.data_dir)
        background = Background(fault)
        send_paced(deployment.port, hooks, args, args.webhook_rate, t0, answers)
        background.join()
        restart = marks["restart"]
        trial.moment = f"killed {kill_at:.1f} s into the burst"
        first = answers.first_ack_after(restart)
        trial.resumed = None if first is None else first - restart
        acked = [h.sid for h in answers.acknowledged(hooks)]
        wait_until_stored(deployment, acked, restart + args.wait, [])
        count_webhooks(trial, deployment, hooks, answers, spool.stop())
    finally:
        deployment.stop()
    return trial


ANSWER_TEXT = "Dziękujemy, odpiszemy wkrótce."


def answer_webhook(port: int, rng: random.Random, customer: str) -> Webhook:
    """A signed inbound webhook from `customer` (a number of their own)."""
    sid = new_sid(rng)
    params = inbound_params(sid, rng)
    params["From"] = customer
    return Webhook(sid, "inbound", signed_post(port, "/twilio/inbound", params))


def trial_answer_kill(
    root: Path, number: int, args: argparse.Namespace, dbs: Databases, rng: random.Random
) -> Trial:
    """SIGKILL the server while it answers a burst of customers; restart while it goes on."""
    trial = Trial()
    deployment = Deployment(root, f"answer-kill-{number}", dbs, emulator_env=emulator_env(args))
    try:
        deployment.start()
        with deployment.client() as api:
            rules = {"debounce_seconds": 0, "loop_guard_per_hour": 1000}
            api.put("/api/automation/rules", json=rules).raise_for_status()
            reply = {"enabled": True, "message": ANSWER_TEXT}
            api.put("/api/auto-reply", json=reply).raise_for_status()
        customers = [f"+4852{i:07d}" for i in range(args.answers)]
        hooks = [answer_webhook(deployment.port, rng, c) for c in customers]
        kill_at = rng.uniform(0.2, 0.6) * len(hooks) / args.answer_rate
        marks: dict[str, float] = {}
        t0 = time.monotonic() + 0.5
        answers = Answers.empty(len(hooks))

        def fault() -> None:
            sleep_until(t0 + kill_at)
            deployment.kill()
            marks["restart"] = time.monotonic()
            deployment.start()

        background = Background(fault)
        send_paced(deployment.port, hooks, args, args.answer_rate, t0, answers)
        background.join()
        restart = marks["restart"]
        trial.moment = f"killed {kill_at:.1f} s into the burst"
        first = answers.first_ack_after(restart)
        trial.resumed = None if first is None else first - restart
        of_hook = dict(zip((h.sid for h in hooks), customers, strict=True))
        acked = {of_hook[h.sid] for h in answers.acknowledged(hooks)}
        # A run or an answer cut off by the kill is found by a sweep (a pending run a
        # minute after it was made): wait for every acknowledged customer's answer.
        while True:
            got = Counter(to for to, _ in emulator_rows(deployment.sandbox_db))
            if all(got[c] for c in acked):
                trial.recovered = time.monotonic() - restart
                break
            if time.monotonic() > restart + args.wait:
                break
            time.sleep(0.5)
        time.sleep(2)  # a second answer, if any, would come right after the first
        got = Counter(to for to, _ in emulator_rows(deployment.sandbox_db))
        trial.acknowledged = len(acked)
        trial.stored = sum(1 for c in acked if got[c])
        trial.duplicates = sum(n - 1 for n in got.values() if n > 1)
        trial.lost = sum(1 for c in acked if not got[c])
        trial.notes["not acknowledged"] += len(hooks) - len(acked)
        trial.notes["answered though not acknowledged"] += sum(
            1 for c in customers if got[c] and c not in acked
        )
        strangers = sum(n for to, n in got.items() if to not in set(customers))
        check(trial, trial.lost == 0, f"{trial.lost} acknowledged customers got no answer")
        check(trial, trial.duplicates == 0, f"{trial.duplicates} answers beyond one each")
        check(trial, strangers == 0, f"{strangers} answers to numbers that never wrote")
    finally:
        deployment.stop()
    return trial


def trial_locked(
    root: Path,
    number: int,
    args: argparse.Namespace,
    dbs: Databases,
    rng: random.Random,
    poisoned: bool,
) -> Trial:
    """A stream of webhooks while another process holds the database's write lock."""
    trial = Trial()
    name = "poisoned" if poisoned else "db-lock"
    deployment = Deployment(root, f"{name}-{number}", dbs)
    try:
        deployment.start()
        hold = rng.uniform(*args.lock)
        count = round((LOCK_LEAD + hold + LOCK_TAIL) * args.stream_rate)
        hooks = []
        for i in range(count):
            if poisoned and i % POISON_EVERY == POISON_EVERY // 2:
                hooks.append(poisoned_webhook(deployment.port, rng, i // POISON_EVERY))
            else:
                hooks.append(good_webhook(deployment.port, rng))
        marks: dict[str, float] = {}
        t0 = time.monotonic() + 0.5
        answers = Answers.empty(len(hooks))

        def fault() -> None:
            sleep_until(t0 + LOCK_LEAD)
            with deployment.database_locked():
                marks["locked"] = time.monotonic()
                time.sleep(hold)
                # Before the release itself: answers after this mark may be the backlog's.
                marks["released"] = time.monotonic()
            before = answers.acknowledged(hooks, until=marks["released"])
            poisoned = [h.sid for h in before if h.poison]
            deadline = marks["released"] + args.wait
            done = wait_until_stored(deployment, [h.sid for h in before], deadline, poisoned)
            trial.recovered = None if done is None else done - marks["released"]

        spool = SpoolWatch(deployment.data_dir)
        background = Background(fault)
        send_paced(deployment.port, hooks, args, args.stream_rate, t0, answers)
        background.join()
        trial.moment = f"locked {hold:.1f} s"
        during = [
            s
            for s, at in zip(answers.status, answers.at, strict=True)
            if marks["locked"] <= at <= marks["released"]
        ]
        trial.notes["answered 2xx during the lock"] += sum(1 for s in during if 200 <= s < 300)
        acked = answers.acknowledged(hooks)
        poisoned_acked = [h.sid for h in acked if h.poison]
        deadline = marks["released"] + args.wait
        wait_until_stored(deployment, [h.sid for h in acked], deadline, poisoned_acked)
        count_webhooks(trial, deployment, hooks, answers, spool.stop())
    finally:
        deployment.stop()
    return trial


# --- running and reporting -----------------------------------------------------------


def run_scenario(
    scenario: str, trials: int, root: Path, args: argparse.Namespace, dbs: Databases
) -> Row:
    """Every trial of one scenario, one line each."""
    print(f"\n== {scenario}: {trials} trials ==", flush=True)
    row = Row(scenario)
    for number in range(1, trials + 1):
        rng = random.Random(f"{args.seed}:{scenario}:{number}")
        started = time.monotonic()
        before = set(root.iterdir())
        if scenario == "campaign-kill":
            trial = trial_campaign_kill(root, number, args, dbs, rng)
        elif scenario == "webhook-kill":
            trial = trial_webhook_kill(root, number, args, dbs, rng)
        elif scenario == "answer-kill":
            trial = trial_answer_kill(root, number, args, dbs, rng)
        elif scenario == "redis-restart":
            trial = trial_redis_restart(root, number, args, dbs, rng)
        else:
            trial = trial_locked(root, number, args, dbs, rng, scenario == "poisoned")
        row.trials.append(trial)
        notes = [f"{k} {v}" for k, v in sorted(trial.notes.items()) if v]
        if trial.slowest is not None:
            notes.append(f"slowest 2xx {trial.slowest:.1f} s")
        print(
            f"  trial {number:>2}: {trial.moment}; recover {recover_text(scenario, [trial])}; "
            f"acknowledged {trial.acknowledged}, stored {trial.stored}, duplicates "
            f"{trial.duplicates}, lost {trial.lost}; {', '.join(notes)} "
            f"[{time.monotonic() - started:.0f} s] {'PASS' if not trial.failures else 'FAIL'}",
            flush=True,
        )
        made = sorted(set(root.iterdir()) - before)
        for failure in trial.failures:
            print(f"      FAIL {failure}", flush=True)
        if trial.failures:
            print(f"      its data (logs, databases, spool): {', '.join(map(str, made))}")
        elif not args.keep:
            for path in made:
                shutil.rmtree(path, ignore_errors=True)
    return row


def _seconds(values: list[float | None], pick: Callable[[list[float]], float]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    text_ = f"{pick(known):.1f}"
    return text_ if len(known) == len(values) else f"{text_}*"


def recover_text(
    scenario: str, trials: list[Trial], pick: Callable[[list[float]], float] = statistics.median
) -> str:
    """ "A / B" seconds ("B" where there is no A); * = not reached in every trial."""
    done = _seconds([t.recovered for t in trials], pick)
    if scenario not in RESUMES:
        return f"{done} s"
    return f"{_seconds([t.resumed for t in trials], pick)} / {done} s"


def summary(rows: list[Row]) -> None:
    """The table, then what each row's notes and maxima say."""
    print("\n== faults: summary ==")
    print(
        f"  {'scenario':<14} {'trials':>6} {'acknowledged':>13} {'stored':>8} "
        f"{'duplicates':>10} {'lost':>6}  {'time to recover (median)':<26} check"
    )
    for row in rows:
        print(
            f"  {row.scenario:<14} {len(row.trials):>6} {row.total('acknowledged'):>13,} "
            f"{row.total('stored'):>8,} {row.total('duplicates'):>10,} {row.total('lost'):>6,}  "
            f"{recover_text(row.scenario, row.trials):<26} {'PASS' if not row.failures else 'FAIL'}"
        )
    print("  time to recover: A / B = until work went on / until everything was done, from the")
    print("  end of the fault; * = not reached in every trial (see the trial lines)")
    for row in rows:
        notes = ", ".join(f"{k} {v:,}" for k, v in sorted(row.notes().items()) if v)
        maxima = recover_text(row.scenario, row.trials, max)
        slowest = [t.slowest for t in row.trials if t.slowest is not None]
        if slowest:
            notes += f", slowest 2xx {max(slowest):.1f} s"
        print(f"  {row.scenario}: max recover {maxima}; {notes}")
        for failure in row.failures:
            print(f"    FAIL {failure}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description="Fault injection on a real relaydesk: nothing lost, nothing twice."
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, from {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--trials",
        type=int,
        default=None,
        help="trials per scenario (default 10 for the kill scenarios, 3 otherwise)",
    )
    parser.add_argument("--recipients", type=int, default=2000, help="numbers per campaign")
    parser.add_argument("--rate", type=float, default=75.0, help="CAMPAIGN_RATE_MPS (default 75)")
    parser.add_argument(
        "--latency-ms", type=int, default=100, help="the emulator's SANDBOX_LATENCY_MS (100)"
    )
    parser.add_argument("--webhooks", type=int, default=5000, help="webhooks of webhook-kill")
    parser.add_argument(
        "--webhook-rate", type=float, default=500.0, help="webhooks/s of webhook-kill (500)"
    )
    parser.add_argument("--answers", type=int, default=600, help="customers of answer-kill")
    parser.add_argument(
        "--answer-rate", type=float, default=40.0, help="webhooks/s of answer-kill (40)"
    )
    parser.add_argument(
        "--stream-rate", type=float, default=50.0, help="webhooks/s of db-lock, poisoned (50)"
    )
    parser.add_argument(
        "--connections", type=int, default=500, help="most webhook connections at once (500)"
    )
    parser.add_argument(
        "--timeout", type=float, default=15.0, help="seconds a webhook waits for its answer (15)"
    )
    parser.add_argument(
        "--lock", default="10,30", help="the lock's seconds: MIN,MAX, drawn at random (10,30)"
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=150.0,
        help="seconds to wait for acknowledged webhooks to be stored (the spool's replay)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the fault moments")
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="sqlite (default) or postgresql (a new database per trial on DATABASE_URL's server)",
    )
    parser.add_argument("--keep", action="store_true", help="keep data directories, databases")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown or not chosen:
        parser.error(f"--scenarios: choose from {', '.join(SCENARIOS)}")
    args.scenarios = [s for s in SCENARIOS if s in chosen]
    try:
        low, high = (float(x) for x in args.lock.split(","))
    except ValueError:
        parser.error("--lock takes MIN,MAX seconds, e.g. 10,30")
    if not 0 < low <= high <= 600:
        parser.error("--lock: 0 < MIN <= MAX <= 600")
    args.lock = (low, high)
    if args.trials is not None and args.trials < 1:
        parser.error("--trials must be positive")
    if args.recipients < 10 or args.webhooks < 10:
        parser.error("--recipients and --webhooks must be at least 10")
    if len("\n".join(recipient_numbers(args.recipients))) > MAX_INPUT_CHARS:
        parser.error(f"--recipients: the list must fit in {MAX_INPUT_CHARS:,} characters")
    if args.rate > 10_000:
        parser.error("--rate: CAMPAIGN_RATE_MPS is at most 10,000")
    if min(args.rate, args.webhook_rate, args.answer_rate, args.stream_rate, args.timeout) <= 0:
        parser.error("rates and --timeout must be positive")
    if not 1 <= args.connections <= 5000:
        parser.error("--connections must be in 1..5000")
    return args


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    args = parse_args(argv)
    exit_on_sigterm()
    print(environment())
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the start")
    print(
        f"faults: {', '.join(args.scenarios)} on {args.database}; {args.recipients} recipients "
        f"at {args.rate:g}/s, {args.webhooks} webhooks at {args.webhook_rate:g}/s, stream "
        f"{args.stream_rate:g}/s, lock {args.lock[0]:g}-{args.lock[1]:g} s, seed {args.seed}"
    )
    dbs = Databases(args.database)
    root = Path(tempfile.mkdtemp(prefix="relaydesk-faults-"))
    rows: list[Row] = []
    started = time.monotonic()
    try:
        for scenario in args.scenarios:
            trials = args.trials or (10 if scenario in KILL_SCENARIOS else 3)
            rows.append(run_scenario(scenario, trials, root, args, dbs))
        summary(rows)
    finally:
        failed = any(row.failures for row in rows)
        if args.keep or failed:
            print(f"\ndata kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
        dbs.drop_all(keep=args.keep or failed)
    print(
        f"\nwall time {time.monotonic() - started:.0f} s; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end"
    )
    if len(rows) < len(args.scenarios) or any(row.failures for row in rows):
        print("FAIL")
        return 1
    print("all checks PASS")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
