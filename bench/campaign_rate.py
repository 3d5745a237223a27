"""Benchmark: does a campaign go out at the sender's rate R, once per recipient?

What it measures
    For each R in --rates (default 50, 200, 500 messages/s) a fresh `relaydesk serve`
    (sandbox mode, temporary DATA_DIR, in-process worker; with --workers N, `serve
    --no-worker` plus N `relaydesk worker` processes) and the Twilio emulator as its own
    process (`relaydesk sandbox`, like Twilio; --emulator embedded puts it back inside
    the server) are started with
      SANDBOX_LATENCY_MS=100         the emulator answers each Twilio call after 100 ms
      SANDBOX_SENDER_MPS=R           the emulator's per-sender queue sends R messages/s
      SANDBOX_API_RPS=R              the emulator answers 429/20429 above R requests/s
                                     (token bucket, burst R; --no-api-limit leaves it off)
      SANDBOX_STATUS_DELAY_MS=0      status callbacks (sent, delivered) come at once
      CAMPAIGN_RATE_MPS=R            relaydesk's pacing per sender
      CAMPAIGN_CONCURRENCY=C         C = min(256, max(16, ceil(2 * R * latency))), i.e.
                                     twice the calls in flight that R needs at 100 ms
                                     (the dispatcher may cap it on SQLite; the report
                                     says so)
      CAMPAIGN_MAX_RECIPIENTS=N
    Note that SANDBOX_SENDER_MPS alone never refuses a call (like Twilio's queue it delays
    the `sent` step); the 429 answers come from SANDBOX_API_RPS, which is why both are set.

    First, 5 single messages go through POST /api/send-message to a number outside the
    list, and the benchmark waits until the emulator has them: a freshly started
    emulator accepts its first requests late and in a clump, which would read as a
    burst (Twilio is warm). They are left out of every figure.

    One campaign of N distinct valid Polish mobile numbers (--recipients, default 10,000;
    +48 60x/66x/69x ...) is created with POST /api/multi-sms/batches and polled with
    GET /api/multi-sms/batches/{id} until it is completed and no recipient is still
    sending (progress every --progress seconds). A campaign that does not move for
    --stall seconds or is not done within --time-limit (default 3 * N / R + 240 s) is
    canceled, and the figures cover what was sent until then (the checks then fail).

    The figures come from the emulator's own store, <DATA_DIR>/sandbox.db: `date_created`
    of every accepted Messages.create is time.time() at acceptance, full precision.
      achieved    accepted messages / time from the 1st to the last one, and the same
                  over the steady part (the first and last 5% left out)
      max 1 s     the most messages accepted in any one-second window (sliding)
      429s        the emulator does not store refusals; relaydesk logs each refused
                  attempt ("attempt N failed (...429 text...); retry"), and the retries are
                  also counted from relaydesk's `messages.attempts`
      duplicates  per recipient, messages at the emulator minus one
      sent lag    date_sent - date_created at the emulator: how long a message waited
                  for its `sent` step. It grows when more than R/s are accepted (the
                  sender's queue), but also when the emulator's one status thread, which
                  posts every status callback synchronously, falls behind.
      CPU         relaydesk's CPU time (server and workers, all threads, /proc) over the
                  campaign, in cores, split into the server's event-loop thread, its
                  other threads and the workers, and per message; the emulator's own
                  CPU separately (Twilio's part); and the CPU other processes used
                  meanwhile (above ~0.15 cores the figures are disturbed: run it on a
                  quiet machine)
      errors      ERROR lines in the server's log, and how many were "database is
                  locked" (a transaction that did not get SQLite's write lock in 10 s)
    After the campaign the benchmark waits (--drain, at most) for the emulator to finish
    the status steps (sent, delivered) and their callbacks, and says how long that took.

    --postgresql runs each rate on a new database of a throwaway PostgreSQL cluster
    (tests/pgserver.py: initdb from /usr/lib/postgresql/*/bin, fsync=off and
    synchronous_commit=off as in the test suite) after `relaydesk migrate`, and reads
    relaydesk's tables from it with psycopg; --redis starts a throwaway redis-server and
    gives REDIS_URL (the job queue) to the server and the workers. The emulator's
    sandbox.db stays a SQLite file. Their CPU is reported apart from "other processes".

Checks (exit status 1 if any fails)
    the campaign completed; every recipient got exactly one message at the emulator and
    nothing went to another number (duplicates 0); relaydesk stored exactly one campaign
    message per recipient, with the emulator's SID; every recipient row is `queued` with
    its message. With --strict-rate, also: the steady rate is within 5% of R and no
    one-second window holds more than R * 1.05 + 1 messages.

Run (the default takes about 5 minutes if the server keeps up with R: 200 s at R=50, 50 s
at 200, 20 s at 500, plus setup and drain; about 11 minutes on a 2-core machine where one
server tops out near 50 messages/s):

    .venv/bin/python bench/campaign_rate.py
    .venv/bin/python bench/campaign_rate.py --recipients 500 --rates 50     # quick check
    .venv/bin/python bench/campaign_rate.py --rates 500 --concurrency 256
    .venv/bin/python bench/campaign_rate.py --rates 500 --workers 2 --postgresql --redis

(PYTHONPATH=/tmp/rev/src selects another relaydesk revision, as in webhook_ingest.py.)
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchlib import (
    HOST,
    Backing,
    PgConnection,
    Server,
    environment,
    exit_on_sigterm,
    free_port,
    machine_busy_cpu,
    max_in_window,
    percentile,
    run_cli,
    separate_emulator,
    server_env,
    session_cpu,
    thread_cpu,
)
from relaydesk.channels.twilio.errors import describe_error

LATENCY_MS = 100
BODY = "Promocja -20% na wszystko do niedzieli! Kod RABAT20. Odpisz STOP, aby zrezygnowac."
MOBILE_PREFIXES = ("60", "66", "69", "50", "51", "53", "57", "72", "73", "78", "79", "88")
WARM_UP_NUMBER = "+48881999999"  # not in any recipient list (those end below 10 million)
WARM_UP_MESSAGES = 5
MAX_INPUT_CHARS = 200_000  # the API reads at most this much pasted text
TRIM = 0.05
FINAL = ("completed", "failed", "canceled")
REFUSED_429 = describe_error(20429) or "Too Many Requests"
ATTEMPT_FAILED = re.compile(r"attempt \d+ failed \((.*)\); retry")


@dataclass
class RunResult:
    """Figures and checks of one rate."""

    rate: float
    recipients: int
    concurrency: int
    create_seconds: float = 0.0
    batch_status: str = "?"
    ended: str = "?"  # why the wait ended: done, paused, stalled, time limit
    error_lines: int = 0
    locked: int = 0
    elapsed: float = 0.0  # POST -> batch completed, nothing sending
    accepted: int = 0
    span: float = 0.0  # first -> last accepted
    achieved: float = 0.0
    steady: float = 0.0
    first_lag: float = 0.0  # POST answered -> first accepted
    max_burst: int = 0
    max_burst_fixed: int = 0
    refused_429: int = 0
    other_failures: int = 0
    retried: int = 0
    duplicates: int = 0
    queue_lag: list[float] = field(default_factory=list)
    drain: float | None = None
    undrained: int = 0
    server_cpu: float = 0.0  # relaydesk: the server and any worker processes
    loop_cpu: float = 0.0
    worker_cpu: float = 0.0  # of server_cpu: the separate worker processes
    emulator_cpu: float = 0.0  # a separate emulator process (0 when embedded)
    backing_cpu: float = 0.0  # PostgreSQL and Redis (--postgresql, --redis)
    other_cpu: float = 0.0
    layout: str = ""
    wall: float = 0.0
    checks: list[tuple[bool, str]] = field(default_factory=list)
    rate_checks: list[tuple[bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return bool(self.checks) and all(ok for ok, _ in self.checks)

    @property
    def rate_ok(self) -> bool:
        """True when the rate checks passed."""
        return all(ok for ok, _ in self.rate_checks)


# --- setup ---------------------------------------------------------------------------


def recipient_numbers(count: int) -> list[str]:
    """`count` distinct valid Polish mobile numbers (+48 then 9 digits)."""
    per_prefix = 10_000_000
    if count > per_prefix * len(MOBILE_PREFIXES):
        raise SystemExit("too many recipients")
    # Round-robin over the prefixes, so the list looks like a real one.
    return [
        f"+48{MOBILE_PREFIXES[i % len(MOBILE_PREFIXES)]}{i // len(MOBILE_PREFIXES):07d}"
        for i in range(count)
    ]


def sqlite_concurrency_cap() -> int | None:
    """The dispatcher's own limit of concurrent sends on SQLite, if the code has one."""
    from relaydesk.campaigns import dispatch

    cap = getattr(dispatch, "SQLITE_MAX_CONCURRENCY", None)
    return int(cap) if cap else None


def default_concurrency(rate: float, latency_ms: int) -> int:
    """Twice the calls in flight that `rate` needs at `latency_ms`, within [16, 256]."""
    return min(256, max(16, math.ceil(2 * rate * latency_ms / 1000)))


# --- reading the stores --------------------------------------------------------------


def connect_ro(path: Path) -> sqlite3.Connection:
    """A read-only connection that never blocks the server's writers (WAL)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    conn.execute("PRAGMA query_only = 1")
    return conn


def emulator_progress(sandbox_db: Path) -> tuple[int, int]:
    """(accepted, not yet delivered) outbound messages at the emulator so far."""
    if not sandbox_db.exists():
        return 0, 0
    try:
        conn = connect_ro(sandbox_db)
    except sqlite3.Error:
        return 0, 0
    try:
        accepted, open_ = conn.execute(
            "SELECT count(*), coalesce(sum(status NOT IN "
            "('delivered', 'undelivered', 'failed')), 0) "
            "FROM messages WHERE direction = 'outbound-api' AND to_addr != ?",
            (WARM_UP_NUMBER,),
        ).fetchone()
        return int(accepted), int(open_)
    except sqlite3.Error:
        return 0, 0  # the emulator has not created its tables yet
    finally:
        conn.close()


@dataclass
class EmulatorMessage:
    """One Messages.create the emulator accepted."""

    sid: str
    to_addr: str
    status: str
    created: float
    sent: float | None


def emulator_messages(sandbox_db: Path) -> list[EmulatorMessage]:
    """Every outbound message the emulator accepted, in acceptance order."""
    conn = connect_ro(sandbox_db)
    try:
        rows = conn.execute(
            "SELECT sid, to_addr, status, date_created, date_sent FROM messages "
            "WHERE direction = 'outbound-api' AND to_addr != ? ORDER BY date_created, seq",
            (WARM_UP_NUMBER,),
        ).fetchall()
    finally:
        conn.close()
    return [
        EmulatorMessage(str(sid), str(to), str(st), float(c), None if s is None else float(s))
        for sid, to, st, c, s in rows
    ]


@dataclass
class Stored:
    """What relaydesk's own database says about the campaign."""

    recipients: list[tuple[str, str, int | None]]  # number, status, message_id
    messages: dict[int, tuple[str, str | None, int, str]]  # id -> to, sid, attempts, status


def relaydesk_view(app_db: Path | str, batch_id: int) -> Stored:
    """The campaign's recipient rows and every campaign message relaydesk stored (from
    the SQLite file, or from PostgreSQL when `app_db` is a URL)."""
    conn: Any = PgConnection(app_db) if isinstance(app_db, str) else connect_ro(app_db)
    try:
        recipients = [
            (str(n), str(s), None if m is None else int(m))
            for n, s, m in conn.execute(
                "SELECT number, status, message_id FROM multi_sms_recipients WHERE batch_id = ?",
                (batch_id,),
            )
        ]
        messages = {
            int(i): (str(to), sid, int(att or 0), str(st))
            for i, to, sid, att, st in conn.execute(
                "SELECT id, to_addr, sid, attempts, status FROM messages "
                "WHERE direction = 'outbound' AND source = 'campaign'"
            )
        }
    finally:
        conn.close()
    return Stored(recipients, messages)


def log_errors(log_path: Path) -> tuple[int, int]:
    """(ERROR lines, "database is locked" exceptions) in the server's log."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return 0, 0
    errors = sum(1 for line in text.splitlines() if " ERROR " in line)
    return errors, text.count("OperationalError: database is locked")


def refused_attempts(log_path: Path) -> tuple[int, int]:
    """(attempts refused with 429, other failed attempts) from the server's warnings."""
    too_many = other = 0
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return 0, 0
    for match in ATTEMPT_FAILED.finditer(text):
        reason = match.group(1)
        if reason == REFUSED_429 or "429" in reason or "Too Many" in reason:
            too_many += 1
        else:
            other += 1
    return too_many, other


# --- one rate ------------------------------------------------------------------------


def wait_for_campaign(
    client: httpx.Client,
    batch_id: int,
    sandbox_db: Path,
    started: float,
    args: argparse.Namespace,
    time_limit: float,
) -> tuple[dict[str, Any], str]:
    """Poll the batch until it is final with nothing sending; print progress.

    Returns the last batch seen and why the wait ended: done, paused, stalled (nothing
    changed for --stall s) or "time limit".
    """
    last_print = time.monotonic()
    last_state: tuple[Any, ...] = ()
    last_change = time.monotonic()
    prev_count, prev_at = 0, time.monotonic()
    batch: dict[str, Any] = {}
    while True:
        answer = client.get(f"/api/multi-sms/batches/{batch_id}")
        if answer.status_code != 200:
            raise SystemExit(f"GET batch answered {answer.status_code}: {answer.text[:300]}")
        batch = answer.json()
        counters = batch["counters"]
        accepted, _ = emulator_progress(sandbox_db)
        now = time.monotonic()
        idle = counters["pending"] == 0 and counters["sending"] == 0
        if batch["status"] in FINAL and idle:
            return batch, "done"
        if batch["status"] == "paused":
            print(f"  the campaign paused: {batch.get('note')}", flush=True)
            return batch, "paused"
        if now - last_print >= args.progress:
            recent = (accepted - prev_count) / (now - prev_at) if now > prev_at else 0.0
            print(
                f"  {now - started:6.1f} s  {batch['status']:<10} accepted at emulator "
                f"{accepted:>6}/{batch['valid']}  ({recent:6.1f}/s lately)  pending "
                f"{counters['pending']:>6}  sending {counters['sending']:>4}  sent "
                f"{counters['sent']:>6}  delivered {counters['delivered']:>6}  failed "
                f"{counters['failed']}",
                flush=True,
            )
            last_print, prev_count, prev_at = now, accepted, now
        state = (accepted, batch["status"], *sorted(counters.items()))
        if state != last_state:
            last_state, last_change = state, now
        elif now - last_change > args.stall:
            print(f"  nothing changed for {args.stall:g} s; giving up", flush=True)
            return batch, "stalled"
        if now - started > time_limit:
            print(f"  not done within the time limit ({time_limit:.0f} s)", flush=True)
            return batch, "time limit"
        time.sleep(args.poll)


def warm_up(client: httpx.Client, sandbox_db: Path) -> None:
    """A few single messages first, to a number outside the list, until the emulator has them.

    Twilio is warm; a freshly started emulator is not (its first requests wait for
    imports, connections and caches, and are then accepted in a clump that looks like
    a burst). The figures leave these messages out.
    """
    for i in range(WARM_UP_MESSAGES):
        answer = client.post(
            "/api/send-message", json={"to": WARM_UP_NUMBER, "body": f"warm-up {i + 1}"}
        )
        if answer.status_code not in (200, 201, 202):
            raise SystemExit(f"warm-up send answered {answer.status_code}: {answer.text[:300]}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        conn = connect_ro(sandbox_db) if sandbox_db.exists() else None
        try:
            got = (
                conn.execute(
                    "SELECT count(*) FROM messages WHERE to_addr = ?", (WARM_UP_NUMBER,)
                ).fetchone()[0]
                if conn
                else 0
            )
        except sqlite3.Error:
            got = 0
        finally:
            if conn:
                conn.close()
        if got >= WARM_UP_MESSAGES:
            return
        time.sleep(0.2)
    raise SystemExit("the warm-up messages did not reach the emulator within 60 s")


def wait_for_drain(sandbox_db: Path, limit: float) -> tuple[float | None, int]:
    """Wait until the emulator delivered everything (status steps, callbacks)."""
    start = time.monotonic()
    while True:
        _, open_ = emulator_progress(sandbox_db)
        waited = time.monotonic() - start
        if open_ == 0:
            return waited, 0
        if waited >= limit:
            return None, open_
        time.sleep(0.2)


def run_rate(rate: float, base_dir: Path, args: argparse.Namespace, backing: Backing) -> RunResult:
    """Fresh server at rate R, one campaign, wait, read both stores, check."""
    concurrency = args.concurrency or default_concurrency(rate, args.latency_ms)
    result = RunResult(rate, args.recipients, concurrency)
    data_dir = base_dir / f"r{rate:g}"
    data_dir.mkdir(parents=True)
    port = free_port()
    extra = {
        "SANDBOX_LATENCY_MS": str(args.latency_ms),
        "SANDBOX_SENDER_MPS": f"{rate:g}",
        "SANDBOX_API_RPS": "0" if args.no_api_limit else f"{rate:g}",
        "SANDBOX_STATUS_DELAY_MS": str(args.status_delay_ms),
        "CAMPAIGN_RATE_MPS": f"{rate:g}",
        "CAMPAIGN_CONCURRENCY": str(concurrency),
        "CAMPAIGN_MAX_RECIPIENTS": str(max(args.recipients, 250)),
    }
    stores = backing.env()  # DATABASE_URL, REDIS_URL: relaydesk's, not the emulator's
    print(
        f"\n== R = {rate:g}/s: {args.recipients} recipients; "
        + ", ".join(f"{k}={v}" for k, v in extra.items())
        + " ==",
        flush=True,
    )
    base = f"http://{HOST}:{port}"
    emulator: Server | None = None
    if args.emulator == "separate":
        emulator = separate_emulator(data_dir, base, extra)
    env = server_env(data_dir, port, **extra, **stores)
    server = Server(
        data_dir, port, env, data_dir / "server.log", ["--no-worker"] if args.workers else []
    )
    workers = [
        Server(data_dir, 0, env, data_dir / f"worker{i}.log", command="worker")
        for i in range(args.workers)
    ]
    result.layout = (
        f"emulator {args.emulator}; "
        + (f"serve --no-worker + {args.workers} worker process(es)" if workers else "serve")
        + ("; PostgreSQL" if "DATABASE_URL" in stores else "; SQLite")
        + ("; Redis queue" if "REDIS_URL" in stores else "")
    )
    run_cli(["migrate"], env, data_dir)
    token = run_cli(["token", "create", "bench", "--role", "admin"], env, data_dir)
    token = token.strip().splitlines()[-1]
    sandbox_db = data_dir / "sandbox.db"
    app_db: Path | str = stores.get("DATABASE_URL") or data_dir / "app.db"
    numbers = recipient_numbers(args.recipients)
    pasted = "\n".join(numbers)
    headers = {"Authorization": f"Bearer {token}"}

    def relaydesk_cpu() -> float:
        return session_cpu(server.pid) + sum(session_cpu(w.pid) for w in workers)

    def workers_cpu() -> float:
        return sum(session_cpu(w.pid) for w in workers)

    def emulator_cpu() -> float:
        return session_cpu(emulator.pid) if emulator is not None else 0.0

    try:
        if emulator is not None:
            emulator.start()
        server.start()
        for w in workers:
            w.start()
        with httpx.Client(base_url=base, headers=headers, timeout=300) as client:
            cpu0, machine0, client0, backing0 = (
                relaydesk_cpu(),
                machine_busy_cpu(),
                time.process_time(),
                backing.cpu(),
            )
            worker0, emulator0 = workers_cpu(), emulator_cpu()
            loop0 = thread_cpu(server.pid).get(server.pid, 0.0)
            warm_up(client, sandbox_db)
            started = time.monotonic()
            answer = client.post("/api/multi-sms/batches", json={"numbers": pasted, "body": BODY})
            result.create_seconds = time.monotonic() - started
            created_at = time.time()
            if answer.status_code != 201:
                raise SystemExit(
                    f"POST /api/multi-sms/batches answered {answer.status_code}: "
                    f"{answer.text[:500]}"
                )
            created = answer.json()
            batch_id = int(created["id"])
            print(
                f"  batch {batch_id} created in {result.create_seconds:.2f} s: valid "
                f"{created['valid']}, duplicates {created['duplicates']}, invalid "
                f"{len(created['invalid'])}, {created['segments_per_message']} segment(s) each",
                flush=True,
            )
            if created["valid"] != args.recipients:
                raise SystemExit(f"expected {args.recipients} valid numbers: {created}")
            limit = args.time_limit or 3 * args.recipients / rate + 240
            batch, result.ended = wait_for_campaign(
                client, batch_id, sandbox_db, started, args, limit
            )
            result.wall = time.monotonic() - started
            result.elapsed = result.wall
            cpu1, machine1, client1, backing1 = (
                relaydesk_cpu(),
                machine_busy_cpu(),
                time.process_time(),
                backing.cpu(),
            )
            result.loop_cpu = thread_cpu(server.pid).get(server.pid, 0.0) - loop0
            result.server_cpu = cpu1 - cpu0
            result.worker_cpu = workers_cpu() - worker0
            result.emulator_cpu = emulator_cpu() - emulator0
            result.backing_cpu = backing1 - backing0
            result.other_cpu = max(
                0.0,
                machine1
                - machine0
                - result.server_cpu
                - result.emulator_cpu
                - result.backing_cpu
                - (client1 - client0),
            )
            result.batch_status = str(batch.get("status"))
            if result.ended != "done":
                # Stop the dispatcher, so that the figures cover what was sent until now
                # and the server can stop quickly.
                answer = client.post(f"/api/multi-sms/batches/{batch_id}/cancel")
                print(f"  canceled the campaign (answer {answer.status_code})", flush=True)
            result.drain, result.undrained = wait_for_drain(sandbox_db, args.drain)
            time.sleep(args.settle)  # a late duplicate (a retry) would show up meanwhile
        emulated = emulator_messages(sandbox_db)
        stored = relaydesk_view(app_db, batch_id)
    finally:
        for w in workers:
            w.stop()
        server.stop()
        if emulator is not None:
            emulator.stop()
    logs = [server.log_path] + [w.log_path for w in workers]
    for path in logs:
        refused, other = refused_attempts(path)
        errors, locked = log_errors(path)
        result.refused_429 += refused
        result.other_failures += other
        result.error_lines += errors
        result.locked += locked
    evaluate(result, numbers, emulated, stored, created_at)
    if not result.ok:
        print(f"  server log (last lines):\n{server.log_tail()}")
    report(result)
    return result


def evaluate(
    r: RunResult,
    numbers: list[str],
    emulated: list[EmulatorMessage],
    stored: Stored,
    created_at: float,
) -> None:
    """Rates, bursts, duplicates and the checks of one run."""
    times = sorted(m.created for m in emulated)
    r.accepted = len(times)
    if len(times) >= 2:
        r.span = times[-1] - times[0]
        r.achieved = (len(times) - 1) / r.span if r.span > 0 else float("nan")
        lo = math.floor(TRIM * len(times))
        hi = math.ceil((1 - TRIM) * len(times)) - 1
        if hi > lo and times[hi] > times[lo]:
            r.steady = (hi - lo) / (times[hi] - times[lo])
    if times:
        r.first_lag = times[0] - created_at
        r.max_burst = max_in_window(times, 1.0)
        r.max_burst_fixed = max(Counter(math.floor(t - times[0]) for t in times).values())
    r.queue_lag = sorted(m.sent - m.created for m in emulated if m.sent is not None)
    r.retried = sum(max(0, att - 1) for _, _, att, _ in stored.messages.values())

    wanted = set(numbers)
    per_number = Counter(m.to_addr for m in emulated)
    r.duplicates = sum(n - 1 for n in per_number.values() if n > 1)
    strangers = sum(n for to, n in per_number.items() if to not in wanted)
    missing = sum(1 for to in numbers if per_number.get(to, 0) == 0)
    r.checks.append(
        (
            r.batch_status == "completed" and r.ended == "done",
            f"the campaign completed (it was '{r.batch_status}'; the wait ended: {r.ended})",
        )
    )
    r.checks.append(
        (
            r.duplicates == 0,
            f"duplicates at the emulator: {r.duplicates} (messages to the same recipient - 1)",
        )
    )
    r.checks.append(
        (
            missing == 0 and strangers == 0 and r.accepted == len(numbers),
            f"every recipient sent once: {len(numbers) - missing}/{len(numbers)} recipients "
            f"reached, {r.accepted} messages accepted, {strangers} to other numbers",
        )
    )
    sids = {m.sid: m.to_addr for m in emulated}
    by_to = Counter(to for to, _, _, _ in stored.messages.values())
    rows_ok = sum(
        1
        for number, status, mid in stored.recipients
        if status == "queued"
        and mid is not None
        and (msg := stored.messages.get(mid)) is not None
        and msg[0] == number
        and msg[1] is not None
        and sids.get(msg[1]) == number
        and by_to[number] == 1
    )
    extra_messages = sum(n - 1 for n in by_to.values() if n > 1)
    r.checks.append(
        (
            rows_ok == len(numbers)
            and len(stored.recipients) == len(numbers)
            and len(stored.messages) == len(numbers),
            f"relaydesk: {rows_ok}/{len(numbers)} recipients queued with exactly one campaign "
            f"message carrying the emulator's SID ({len(stored.messages)} campaign messages, "
            f"{extra_messages} extra)",
        )
    )
    tolerance = 0.05
    r.rate_checks.append(
        (
            r.steady >= r.rate * (1 - tolerance) and r.steady <= r.rate * (1 + tolerance),
            f"steady rate {r.steady:.1f}/s within 5% of R = {r.rate:g}",
        )
    )
    r.rate_checks.append(
        (
            r.max_burst <= r.rate * (1 + tolerance) + 1,
            f"largest one-second burst {r.max_burst} <= R * 1.05 + 1",
        )
    )


# --- output --------------------------------------------------------------------------


def report(r: RunResult) -> None:
    """One run's figures and checks."""
    per_msg = r.server_cpu / r.accepted * 1000 if r.accepted else float("nan")
    cores = r.server_cpu / r.wall if r.wall else 0.0
    loop = r.loop_cpu / r.wall if r.wall else 0.0
    cap = sqlite_concurrency_cap()
    capped = f"; the dispatcher uses at most {cap} on SQLite" if cap and cap < r.concurrency else ""
    print(f"  layout            {r.layout}")
    print(f"  concurrency       {r.concurrency} (CAMPAIGN_CONCURRENCY{capped})")
    print(f"  elapsed           {r.elapsed:.1f} s (POST -> completed, nothing sending)")
    print(
        f"  accepted          {r.accepted} messages in {r.span:.1f} s (1st -> last), the 1st "
        f"{r.first_lag * 1000:.0f} ms after the POST answered"
    )
    print(
        f"  achieved          {r.achieved:.1f}/s ({r.achieved / r.rate:.1%} of R); steady "
        f"(5%..95%) {r.steady:.1f}/s ({r.steady / r.rate:.1%} of R)"
    )
    print(
        f"  max 1-s burst     {r.max_burst} (sliding window), {r.max_burst_fixed} "
        f"(fixed seconds from the 1st)"
    )
    print(
        f"  429s              {r.refused_429} refused attempts (server log); "
        f"{r.retried} retries in messages.attempts; {r.other_failures} other failed attempts"
    )
    lag = r.queue_lag
    if lag:
        print(
            f"  sent lag ms       p50 {percentile(lag, 50) * 1000:.0f}  p99 "
            f"{percentile(lag, 99) * 1000:.0f}  max {lag[-1] * 1000:.0f}  (emulator: "
            "date_sent - date_created; sender queue + status thread backlog)"
        )
    if r.drain is None:
        print(f"  status steps      {r.undrained} messages still not delivered after the wait")
    elif r.accepted:
        print(f"  status steps      all delivered {r.drain:.1f} s after the campaign completed")
    bound = "  <- CPU-bound (one process, one GIL)" if cores >= 0.9 and not r.worker_cpu else ""
    workers = r.worker_cpu / r.wall if r.wall else 0.0
    split = f", worker processes {workers:.2f}" if r.worker_cpu else ""
    print(
        f"  relaydesk CPU     {cores:.2f} cores (server event-loop thread {loop:.2f}, its other "
        f"threads {cores - loop - workers:.2f}{split}), {per_msg:.2f} ms per message{bound}"
    )
    if r.emulator_cpu:
        emu = r.emulator_cpu / r.wall if r.wall else 0.0
        emu_msg = r.emulator_cpu / r.accepted * 1000 if r.accepted else float("nan")
        print(
            f"  emulator CPU      {emu:.2f} cores, {emu_msg:.2f} ms per message (Twilio's part: "
            "not on a real server)"
        )
    if r.backing_cpu:
        backing = r.backing_cpu / r.wall if r.wall else 0.0
        per = r.backing_cpu / r.accepted * 1000 if r.accepted else float("nan")
        print(f"  PostgreSQL/Redis  {backing:.2f} cores, {per:.2f} ms per message")
    if r.error_lines:
        print(
            f"  server errors     {r.error_lines} ERROR lines in its log, {r.locked} of them "
            "'database is locked' (SQLite write lock not had within 10 s)"
        )
    other = r.other_cpu / r.wall if r.wall else 0.0
    warning = "  <- other work on this machine: figures are disturbed" if other > 0.15 else ""
    print(
        f"  other processes   {other:.2f} cores (not relaydesk, the emulator or this "
        f"benchmark){warning}"
    )
    for ok, text in r.checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    for ok, text in r.rate_checks:
        print(f"  {'ok  ' if ok else 'SLOW'}  {text}")


def summary(results: list[RunResult]) -> None:
    """Every rate side by side."""
    print("\n== summary ==")
    cap = sqlite_concurrency_cap()
    print(
        f"  {'R/s':>5} {'recips':>7} {'conc':>6} {'elapsed s':>10} {'msg/s':>7} {'% R':>6} "
        f"{'steady/s':>9} {'% R':>6} {'max 1s':>7} {'429s':>5} {'dups':>5} {'CPU cores':>10} "
        f"{'ms CPU/msg':>11}  check"
    )
    for r in results:
        cores = r.server_cpu / r.wall if r.wall else 0.0
        per_msg = r.server_cpu / r.accepted * 1000 if r.accepted else float("nan")
        conc = str(r.concurrency)
        if cap and cap < r.concurrency:
            conc = f"{r.concurrency}>{cap}"
        print(
            f"  {r.rate:>5g} {r.recipients:>7} {conc:>6} {r.elapsed:>10.1f} "
            f"{r.achieved:>7.1f} {r.achieved / r.rate:>6.1%} {r.steady:>9.1f} "
            f"{r.steady / r.rate:>6.1%} {r.max_burst:>7} {r.refused_429:>5} {r.duplicates:>5} "
            f"{cores:>10.2f} {per_msg:>11.2f}  "
            f"{'PASS' if r.ok else 'FAIL'}"
        )
    if cap and any(cap < r.concurrency for r in results):
        print("  (conc A>B: CAMPAIGN_CONCURRENCY A, of which the dispatcher uses B on SQLite)")


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(
        description="Campaign send rate against the sandbox emulator limited to R messages/s."
    )
    parser.add_argument(
        "--rates", default="50,200,500", help="comma-separated R values (messages/s)"
    )
    parser.add_argument("--recipients", type=int, default=10_000, help="numbers per campaign")
    parser.add_argument(
        "--latency-ms", type=int, default=LATENCY_MS, help="SANDBOX_LATENCY_MS (default 100)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="CAMPAIGN_CONCURRENCY (default min(256, max(16, ceil(2 * R * latency))))",
    )
    parser.add_argument(
        "--no-api-limit",
        action="store_true",
        help="do not set SANDBOX_API_RPS=R (the emulator then never answers 429)",
    )
    parser.add_argument(
        "--status-delay-ms", type=int, default=0, help="SANDBOX_STATUS_DELAY_MS (default 0)"
    )
    parser.add_argument("--poll", type=float, default=2.0, help="seconds between batch polls")
    parser.add_argument("--progress", type=float, default=5.0, help="seconds between prints")
    parser.add_argument(
        "--stall",
        type=float,
        default=200.0,
        help="give up when the campaign did not move for this long (default 200 s: more "
        "than the 120 s claim lease after which an interrupted send is reconciled)",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="give up (cancel the campaign) after this long; default 3 * N / R + 240 s",
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=120.0,
        help="wait at most this long for the emulator's status steps after completion",
    )
    parser.add_argument(
        "--settle", type=float, default=2.0, help="wait before reading, for late duplicates"
    )
    parser.add_argument(
        "--strict-rate", action="store_true", help="also fail when the rate is off by > 5%%"
    )
    parser.add_argument(
        "--emulator",
        choices=("separate", "embedded"),
        default="separate",
        help="the emulator as its own process, like Twilio (default), or inside the server",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="run `serve --no-worker` plus this many `relaydesk worker` processes (default 0: "
        "the server's own worker)",
    )
    parser.add_argument(
        "--postgresql",
        action="store_true",
        help="a throwaway PostgreSQL cluster (tests/pgserver.py), a new database per rate",
    )
    parser.add_argument(
        "--redis", action="store_true", help="a throwaway redis-server as the job queue"
    )
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    args = parser.parse_args(argv)
    try:
        rates = [float(x) for x in args.rates.split(",") if x.strip()]
    except ValueError:
        parser.error("--rates takes numbers, e.g. 50,200,500")
    if not rates or any(r <= 0 or r > 10_000 for r in rates):
        parser.error("--rates must be in (0, 10000]")
    if args.recipients < 1:
        parser.error("--recipients must be positive")
    if len("\n".join(recipient_numbers(args.recipients))) > MAX_INPUT_CHARS:
        parser.error(f"--recipients: the list must fit in {MAX_INPUT_CHARS:,} characters")
    if args.concurrency is not None and not 1 <= args.concurrency <= 256:
        parser.error("--concurrency must be in 1..256")

    exit_on_sigterm()
    print(environment())
    print(
        f"campaign rate: {args.recipients} recipients per campaign, R = "
        f"{', '.join(f'{r:g}' for r in rates)} messages/s, emulator latency "
        f"{args.latency_ms} ms, status delay {args.status_delay_ms} ms, "
        f"{'no API limit' if args.no_api_limit else 'SANDBOX_API_RPS = R'}"
    )
    print(
        "  figures from the emulator's own store (date_created of each accepted "
        "Messages.create, same clock, full precision)"
    )
    base_dir = Path(tempfile.mkdtemp(prefix="relaydesk-campaign-"))
    backing = Backing(args.postgresql, args.redis)
    results: list[RunResult] = []
    try:
        backing.start()
        print(f"  {backing.describe()}")
        for rate in rates:
            results.append(run_rate(rate, base_dir, args, backing))
        summary(results)
    finally:
        backing.stop()
        if args.keep:
            print(f"\ndata kept in {base_dir}")
        else:
            shutil.rmtree(base_dir, ignore_errors=True)
    failed = len(results) < len(rates) or not all(r.ok for r in results)
    if args.strict_rate and not all(r.rate_ok for r in results):
        failed = True
    if failed:
        print("\nFAIL")
        return 1
    print("\nall checks PASS")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
