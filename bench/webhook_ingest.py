"""Benchmark: signed Twilio inbound webhooks against a running relaydesk (SQLite or PostgreSQL).

What it measures
    POST /twilio/inbound throughput (stored messages per second) and per-request latency
    (p50/p90/p99/max) at a fixed concurrency, twice: on an empty database and on one that
    already holds a --history message history (default 1,000,000, seeded with seed.py).
    Target: 2,000 webhooks/s sustained with p99 < 50 ms, and no slowdown with history.

How
    For each run it starts `relaydesk serve` itself (fresh DATA_DIR, fixed auth token,
    LOG_LEVEL=WARNING, SANDBOX_STATUS_DELAY_MS=0, background worker in-process as in
    production) and waits for /health. All requests are built and signed in memory
    beforehand (unique MessageSid each, Twilio's parameters, 5,000 customer numbers,
    Polish bodies of varied length), plus ~2% exact repeats of requests already answered
    (Twilio retries) that must not create rows. They are sent over --concurrency persistent
    HTTP/1.1 keep-alive connections (raw asyncio streams; one request in flight per
    connection), after a warm-up excluded from the figures. Latency is time.perf_counter
    from writing the request to reading the whole response.

    Where the time goes: the server's CPU time (/proc/PID/stat, all threads, split into
    the event-loop thread and the others) and the load generator's own CPU time, per
    request, so that one can tell on a 2-core machine whether client or server is the
    limit, plus the CPU that other processes on the machine used meanwhile (anything
    above ~0.15 cores disturbs the figures). It also reports how many stored messages
    still wait for the background follow-up job (`processed_at IS NULL`) when the load
    stops, and how long they take to drain. --no-worker serves without the in-process
    worker, to see what the follow-up jobs cost.

    Afterwards, with the server stopped, it checks the database directly: every unique
    SID sent is stored exactly once, no SID is stored twice, repeats created no rows,
    `message_counters` equal count(*) per direction, conversation counters add up, and a
    sample of bodies round-tripped intact. Prints PASS/FAIL; exits 1 on any FAIL.

    --postgresql runs every server on a new database of a throwaway PostgreSQL cluster
    (tests/pgserver.py: initdb from /usr/lib/postgresql/*/bin, fsync=off and
    synchronous_commit=off as in the test suite, so the figures leave out the disk's
    flush) after `relaydesk migrate`, and reads it with psycopg; --redis starts a
    throwaway redis-server and gives REDIS_URL (the job queue) to the servers. Their
    CPU is reported apart from "other processes". The history run needs SQLite (seed.py
    writes the file), so --postgresql takes --history 0.

Run (about 3 minutes with the default million-message history, 45 s of it seeding):

    .venv/bin/python bench/webhook_ingest.py
    .venv/bin/python bench/webhook_ingest.py --count 20000 --concurrency 32 --history 1000000
    .venv/bin/python bench/webhook_ingest.py --history 0          # empty database only
    .venv/bin/python bench/webhook_ingest.py --count 10000 --history 0 --postgresql --workers 2
    .venv/bin/python bench/webhook_ingest.py --count 10000 --history 0 --outgoing  # + endpoint

The server runs whatever `relaydesk` the interpreter imports; to measure one revision
while src/ is being edited, export it and put it first on PYTHONPATH:

    git archive HEAD src | tar -x -C /tmp/rev && \
        PYTHONPATH=/tmp/rev/src .venv/bin/python bench/webhook_ingest.py
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchlib import (
    BENCH_ACCOUNT_SID,
    HOST,
    Backing,
    PgConnection,
    Server,
    environment,
    exit_on_sigterm,
    free_port,
    machine_busy_cpu,
    percentile,
    read_answer,
    relaydesk_command,
    run_cli,
    server_env,
    session_cpu,
    signed_post,
    thread_cpu,
)
from relaydesk.channels.twilio.segments import count_segments
from seed import INBOUND_SENTENCES, OUR_ADDRESS, make_body, participant_number, seed_database

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' loopback fakes
from tests.fakes.webhook_receiver import WebhookReceiver

CUSTOMERS = 5_000
DRAIN_TIMEOUT = 180.0
BODY_SAMPLE = 200


@dataclass
class Webhook:
    """One prepared request."""

    sid: str
    body: str
    data: bytes
    duplicate: bool = False


@dataclass
class Phase:
    """Raw results of sending a list of requests."""

    latencies: list[float]
    statuses: list[int]
    elapsed: float


@dataclass
class RunResult:
    """Figures and checks of one run (empty database or with history)."""

    label: str
    history: int
    processes: int = 1  # web processes (serve --workers)
    requests: int = 0
    duplicates: int = 0
    elapsed: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    server_cpu: float = 0.0
    loop_thread_cpu: float = 0.0
    busiest_other_cpu: float = 0.0
    client_cpu: float = 0.0
    backing_cpu: float = 0.0  # PostgreSQL and Redis (--postgresql, --redis)
    other_cpu: float = 0.0
    backlog_at_end: int = 0
    drain_seconds: float | None = None
    drain_server_cpu: float = 0.0
    checks: list[tuple[bool, str]] = field(default_factory=list)

    @property
    def unique(self) -> int:
        """Requests that carried a new SID."""
        return self.requests - self.duplicates

    @property
    def messages_per_s(self) -> float:
        """New messages stored per second of the timed phase."""
        return self.unique / self.elapsed if self.elapsed else 0.0

    @property
    def non_200(self) -> int:
        """Responses other than 200 (0 = connection error)."""
        return sum(n for status, n in self.statuses.items() if status != 200)


# --- building requests ---------------------------------------------------------------


def customer_numbers(history_conversations: int) -> list[str]:
    """5,000 customer numbers, spread over the seeded conversations when there are any."""
    stride = max(1, history_conversations // CUSTOMERS)
    return [participant_number(i * stride) for i in range(CUSTOMERS)]


def build_webhook(port: int, rng: random.Random, customers: list[str]) -> Webhook:
    """A signed inbound webhook as Twilio would POST it."""
    sid = f"SM{uuid.UUID(int=rng.getrandbits(128)).hex}"
    body = make_body(rng, INBOUND_SENTENCES, min_len=2, max_len=320)
    segments = count_segments(body).segments
    params = {
        "ToCountry": "US",
        "ToState": "NJ",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": body,
        "FromCountry": "PL",
        "To": OUR_ADDRESS,
        "ToZip": "",
        "NumSegments": str(segments),
        "MessageSid": sid,
        "AccountSid": BENCH_ACCOUNT_SID,
        "From": rng.choice(customers),
        "ApiVersion": "2010-04-01",
    }
    return Webhook(sid, body, signed_post(port, "/twilio/inbound", params))


def build_schedule(
    port: int,
    rng: random.Random,
    customers: list[str],
    warmup: int,
    count: int,
    dup_ratio: float,
    concurrency: int,
) -> tuple[list[Webhook], list[Webhook]]:
    """Warm-up requests and timed requests (the latter with ~dup_ratio exact repeats).

    A repeat copies a request at least 4 × concurrency positions earlier, so the original
    has normally been answered already, as with Twilio's retries.
    """
    warm = [build_webhook(port, rng, customers) for _ in range(warmup)]
    n_dup = round(count * dup_ratio)
    gap = 4 * concurrency
    positions = set(rng.sample(range(min(gap, count), count), min(n_dup, max(0, count - gap))))
    timed: list[Webhook] = []
    for pos in range(count):
        pool_size = len(warm) + len(timed) - gap
        if pos in positions and pool_size > 0:
            k = rng.randrange(pool_size)
            original = warm[k] if k < len(warm) else timed[k - len(warm)]
            timed.append(Webhook(original.sid, original.body, original.data, duplicate=True))
        else:
            timed.append(build_webhook(port, rng, customers))
    return warm, timed


# --- sending -------------------------------------------------------------------------


async def send_all(port: int, requests: list[Webhook], concurrency: int) -> Phase:
    """Send `requests` in order over `concurrency` keep-alive connections."""
    n = len(requests)
    latencies = [0.0] * n
    statuses = [0] * n
    cursor = 0

    async def connection() -> None:
        nonlocal cursor
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while cursor < n:
                i = cursor
                cursor += 1
                started = time.perf_counter()
                try:
                    writer.write(requests[i].data)
                    status, close = await read_answer(reader)
                except (ConnectionError, asyncio.IncompleteReadError):
                    status, close = 0, True
                latencies[i] = time.perf_counter() - started
                statuses[i] = status
                if close:
                    writer.close()
                    reader, writer = await asyncio.open_connection(HOST, port)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(min(concurrency, n))))
    return Phase(latencies, statuses, time.perf_counter() - started)


def run_async(factory: Callable[[], Coroutine[Any, Any, Phase]]) -> Phase:
    """Run a coroutine on uvloop when it is installed (leaner client), else asyncio."""
    try:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(factory())
    except ImportError:
        return asyncio.run(factory())


# --- the database --------------------------------------------------------------------


Database = Path | str  # the SQLite file, or a PostgreSQL URL (--postgresql)


def connect(db: Database) -> Any:
    """A plain connection for reading the app's database (sqlite3 or psycopg)."""
    if isinstance(db, str):
        return PgConnection(db)
    conn = sqlite3.connect(db, timeout=30)
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def count_messages(db: Database) -> int:
    """Rows in messages."""
    conn = connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
    finally:
        conn.close()


def unprocessed(conn: Any) -> int:
    """Stored inbound messages that the follow-up job has not handled yet."""
    row = conn.execute(
        "SELECT count(*) FROM messages WHERE processed_at IS NULL AND direction = 'inbound'"
    ).fetchone()
    return int(row[0])


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def verify(
    db: Database, sent: dict[str, str], rows_before: int, label: str, rng: random.Random
) -> list[tuple[bool, str]]:
    """Check the stored messages against what was sent (server stopped)."""
    checks: list[tuple[bool, str]] = []
    conn = connect(db)
    try:
        sids = list(sent)
        found = 0
        for chunk in _chunks(sids):
            marks = ",".join("?" * len(chunk))
            found += conn.execute(
                f"SELECT count(*) FROM messages WHERE sid IN ({marks})",  # noqa: S608
                chunk,
            ).fetchone()[0]
        checks.append(
            (found == len(sids), f"{label}: {len(sids):,} unique SIDs sent, {found:,} stored")
        )
        dupes = conn.execute(
            "SELECT sid, count(*) FROM messages WHERE sid IS NOT NULL "
            "GROUP BY sid HAVING count(*) > 1 LIMIT 5"
        ).fetchall()
        checks.append(
            (not dupes, f"{label}: no SID stored twice {dupes if dupes else ''}".rstrip())
        )
        total = int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
        checks.append(
            (
                total == rows_before + len(sids),
                f"{label}: messages grew by {total - rows_before:,} for {len(sids):,} unique "
                "SIDs (repeats created no rows)",
            )
        )
        counters = dict(conn.execute("SELECT direction, count FROM message_counters").fetchall())
        for direction in ("inbound", "outbound"):
            actual = int(
                conn.execute(
                    "SELECT count(*) FROM messages WHERE direction = ?", (direction,)
                ).fetchone()[0]
            )
            kept = int(counters.get(direction, -1))
            checks.append(
                (
                    kept == actual,
                    f"{label}: message_counters {direction} {kept:,} == count(*) {actual:,}",
                )
            )
        conv_total = conn.execute("SELECT coalesce(sum(message_count), 0) FROM conversations")
        in_convs = conn.execute("SELECT count(*) FROM messages WHERE conversation_id IS NOT NULL")
        a, b = int(conv_total.fetchone()[0]), int(in_convs.fetchone()[0])
        checks.append((a == b, f"{label}: sum(conversations.message_count) {a:,} == {b:,}"))
        sample = rng.sample(sids, min(BODY_SAMPLE, len(sids)))
        bad = 0
        for chunk in _chunks(sample):
            marks = ",".join("?" * len(chunk))
            stored = dict(
                conn.execute(
                    f"SELECT sid, body FROM messages WHERE sid IN ({marks})",  # noqa: S608
                    chunk,
                ).fetchall()
            )
            bad += sum(1 for sid in chunk if stored.get(sid) != sent[sid])
        checks.append(
            (bad == 0, f"{label}: {len(sample)} sampled bodies stored intact ({bad} differ)")
        )
    finally:
        conn.close()
    return checks


# --- one run -------------------------------------------------------------------------


def prepare_history(data_dir: Path, port: int, messages: int, conversations: int) -> None:
    """Migrate a fresh DATA_DIR and seed the history into it."""
    print(f"  migrating and seeding {messages:,} messages over {conversations:,} conversations")
    run_cli(["migrate"], server_env(data_dir, port), data_dir)
    summary = seed_database(data_dir / "app.db", messages, conversations, progress=print)
    print(f"  seeded in {summary.seconds:.1f} s")


def run_once(
    label: str,
    data_dir: Path,
    history: int,
    conversations: int,
    args: argparse.Namespace,
    rng: random.Random,
    backing: Backing,
) -> RunResult:
    """Start a server on `data_dir` (seeded with `history` messages), load it, verify."""
    print(f"\n== {label} ==", flush=True)
    data_dir.mkdir(parents=True, exist_ok=False)
    port = args.port or free_port()
    if history:
        prepare_history(data_dir, port, history, conversations)
    customers = customer_numbers(conversations if history else 0)
    print(f"  building {args.warmup + args.count:,} signed requests", flush=True)
    warm, timed = build_schedule(
        port, rng, customers, args.warmup, args.count, args.dup_ratio, args.concurrency
    )
    sent = {w.sid: w.body for w in (*warm, *timed)}
    result = RunResult(label=label, history=history, processes=args.workers)
    result.requests = len(timed)
    result.duplicates = sum(1 for w in timed if w.duplicate)

    env = server_env(data_dir, port, **backing.env())
    db: Database = env.get("DATABASE_URL") or data_dir / "app.db"
    if "DATABASE_URL" in env:
        run_cli(["migrate"], env, data_dir)
    extra = ["--no-worker"] if args.no_worker else []
    sandbox = None
    if args.workers > 1:
        # Several web processes: the emulator runs as its own process (see `serve --help`).
        sandbox_port = free_port()
        sandbox = subprocess.Popen(
            [relaydesk_command(), "sandbox", "--port", str(sandbox_port)],
            env={**env, "DATA_DIR": str(data_dir / "twilio")},
            cwd=data_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        env["TWILIO_API_BASE_URL"] = f"http://{HOST}:{sandbox_port}"
        extra += ["--workers", str(args.workers)]
    receiver = None
    if args.outgoing:
        # One endpoint subscribed to message.received, on a loopback receiver.
        env["WEBHOOKS_ALLOW_PRIVATE_NETWORKS"] = "true"
        receiver = WebhookReceiver(record=False).__enter__()
    server = Server(data_dir, port, env, data_dir / "server.log", extra_args=extra)
    try:
        server.start()
        if receiver is not None:
            register_endpoint(env, data_dir, port, receiver.url, ["message.received"])
        if args.workers > 1:
            # /health answers as soon as the first process is up; connections made
            # before the others finish starting would all land on that one.
            time.sleep(3)
        rows_before = count_messages(db)
        print(f"  server pid {server.pid} on port {port}; {rows_before:,} messages stored")
        phase = run_async(lambda: send_all(port, warm, args.concurrency))
        if any(s != 200 for s in phase.statuses):
            print(f"  warm-up answers: {dict(Counter(phase.statuses))}\n{server.log_tail()}")

        cpu0, threads0, client0, machine0, backing0 = (
            session_cpu(server.pid),
            thread_cpu(server.pid),
            time.process_time(),
            machine_busy_cpu(),
            backing.cpu(),
        )
        phase = run_async(lambda: send_all(port, timed, args.concurrency))
        cpu1, threads1, client1, machine1, backing1 = (
            session_cpu(server.pid),
            thread_cpu(server.pid),
            time.process_time(),
            machine_busy_cpu(),
            backing.cpu(),
        )

        result.elapsed = phase.elapsed
        result.latencies_ms = sorted(x * 1000 for x in phase.latencies)
        result.statuses = Counter(phase.statuses)
        result.server_cpu = cpu1 - cpu0
        result.client_cpu = client1 - client0
        result.backing_cpu = backing1 - backing0
        result.other_cpu = max(
            0.0,
            machine1 - machine0 - result.server_cpu - result.client_cpu - result.backing_cpu,
        )
        deltas = {tid: t - threads0.get(tid, 0.0) for tid, t in threads1.items()}
        result.loop_thread_cpu = deltas.pop(server.pid, 0.0)
        result.busiest_other_cpu = max(deltas.values(), default=0.0)

        conn = connect(db)
        try:
            result.backlog_at_end = unprocessed(conn)
            if args.no_worker:
                result.drain_seconds = -1.0
            drain_start, drain_cpu0 = time.monotonic(), session_cpu(server.pid)
            while result.drain_seconds is None and time.monotonic() - drain_start < DRAIN_TIMEOUT:
                if unprocessed(conn) == 0:
                    result.drain_seconds = time.monotonic() - drain_start
                    break
                time.sleep(0.25)
            result.drain_server_cpu = session_cpu(server.pid) - drain_cpu0
        finally:
            conn.close()
    finally:
        server.stop()
        if receiver is not None:
            print(f"  outgoing webhooks received by the endpoint: {receiver.count:,}")
            receiver.__exit__(None, None, None)
        if sandbox is not None:
            sandbox.terminate()
            sandbox.wait(timeout=30)
    result.checks = verify(db, sent, rows_before, label, rng)
    report(result)
    return result


def register_endpoint(
    env: dict[str, str], data_dir: Path, port: int, url: str, types: list[str]
) -> dict[str, Any]:
    """Register an outgoing webhook endpoint through the API (a fresh admin token)."""
    token = run_cli(["token", "create", "bench", "--role", "admin"], env, data_dir)
    answer = httpx.post(
        f"http://{HOST}:{port}/api/webhooks",
        json={"url": url, "events": types},
        headers={"Authorization": f"Bearer {token.strip().splitlines()[-1]}"},
        timeout=30,
    )
    if answer.status_code != 201:
        raise SystemExit(f"could not register the endpoint: {answer.status_code} {answer.text}")
    made: dict[str, Any] = answer.json()
    print(f"  outgoing webhooks: endpoint {made['id']} for {', '.join(types)} at {url}")
    return made


# --- output --------------------------------------------------------------------------


def report(r: RunResult) -> None:
    """Print one run's figures and checks."""
    lat = r.latencies_ms
    n = max(r.requests, 1)
    print(f"  requests          {r.requests:,} ({r.unique:,} new SIDs + {r.duplicates:,} repeats)")
    print(f"  elapsed           {r.elapsed:.2f} s")
    print(
        f"  messages/s        {r.messages_per_s:,.0f}   (requests/s {r.requests / r.elapsed:,.0f})"
    )
    print(
        f"  latency ms        p50 {percentile(lat, 50):.1f}   p90 {percentile(lat, 90):.1f}   "
        f"p99 {percentile(lat, 99):.1f}   max {lat[-1] if lat else float('nan'):.1f}"
    )
    others = ", ".join(
        f"{status}: {k}" for status, k in sorted(r.statuses.items()) if status != 200
    )
    print(
        f"  non-200           {r.non_200}"
        + (f"  ({others}; 0 = connection error)" if others else "")
    )
    if r.processes > 1:
        # The threads read are the supervising process's, which serves nothing itself.
        split = f"{r.processes} web processes and the worker process together"
    else:
        split = (
            f"event-loop thread {r.loop_thread_cpu / r.elapsed:.2f}, busiest other thread "
            f"{r.busiest_other_cpu / r.elapsed:.2f}, normally the webhook writer"
        )
    print(
        f"  server CPU        {r.server_cpu / n * 1000:.2f} ms/request = "
        f"{r.server_cpu / r.elapsed:.2f} cores ({split})"
    )
    print(
        f"  client CPU        {r.client_cpu / n * 1000:.2f} ms/request = "
        f"{r.client_cpu / r.elapsed:.2f} cores"
    )
    if r.backing_cpu:
        print(
            f"  PostgreSQL/Redis  {r.backing_cpu / n * 1000:.2f} ms/request = "
            f"{r.backing_cpu / r.elapsed:.2f} cores"
        )
    server_cores, client_cores = r.server_cpu / r.elapsed, r.client_cpu / r.elapsed
    if r.processes > 1 and client_cores < 0.85:
        verdict = f"{r.processes} web processes: compare their CPU with the machine's cores"
    elif server_cores >= 0.85 and client_cores < 0.5:
        verdict = "the server: its process is CPU-bound at ~1 core (one Python process, one GIL)"
    elif client_cores >= 0.85:
        verdict = "the load generator (client CPU-bound); figures understate the server"
    else:
        verdict = "neither process is CPU-bound: time goes to waiting (locks, I/O)"
    print(f"  bottleneck        {verdict}")
    other = r.other_cpu / r.elapsed
    warning = "  <- other work on this machine: figures are disturbed" if other > 0.15 else ""
    print(f"  other processes   {other:.2f} cores{warning}")
    if r.drain_seconds is None:
        drained = f"NOT drained within {DRAIN_TIMEOUT:.0f} s"
    elif r.drain_seconds < 0:
        drained = "no worker (--no-worker)"
    else:
        drained = f"drained in {r.drain_seconds:.1f} s using {r.drain_server_cpu:.1f} s server CPU"
    print(f"  follow-up backlog {r.backlog_at_end:,} messages unprocessed at the end; {drained}")
    for ok, text in r.checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")


def summary(results: list[RunResult], concurrency: int) -> None:
    """Side-by-side figures and the target."""
    print(f"\n== summary (concurrency {concurrency}) ==")
    print(f"  {'run':<28}{'msg/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'srv ms/req':>12}")
    for r in results:
        lat = r.latencies_ms
        per_request = r.server_cpu / max(r.requests, 1) * 1000
        print(
            f"  {r.label:<28}{r.messages_per_s:>8,.0f}{percentile(lat, 50):>9.1f}"
            f"{percentile(lat, 99):>9.1f}{lat[-1]:>9.1f}{per_request:>12.2f}"
        )
    for r in results:
        ok = r.messages_per_s >= 2000 and percentile(r.latencies_ms, 99) < 50
        print(f"  target (>= 2,000 msg/s, p99 < 50 ms) on {r.label}: {'met' if ok else 'NOT met'}")
    if len(results) == 2:
        a, b = results
        change = (b.messages_per_s / a.messages_per_s - 1) * 100 if a.messages_per_s else 0.0
        p99a, p99b = percentile(a.latencies_ms, 99), percentile(b.latencies_ms, 99)
        print(f"  with history: throughput {change:+.1f}%, p99 {p99a:.1f} -> {p99b:.1f} ms")


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(
        description="Signed Twilio inbound webhooks against relaydesk (SQLite or PostgreSQL)."
    )
    parser.add_argument("--count", type=int, default=20_000, help="timed webhooks per run")
    parser.add_argument("--concurrency", type=int, default=32, help="connections in parallel")
    parser.add_argument(
        "--history",
        type=int,
        default=1_000_000,
        help="messages seeded for the second run (0: skip)",
    )
    parser.add_argument(
        "--conversations", type=int, default=None, help="conversations of the history (history/20)"
    )
    parser.add_argument("--warmup", type=int, default=500, help="requests sent before timing")
    parser.add_argument("--dup-ratio", type=float, default=0.02, help="share of repeated SIDs")
    parser.add_argument("--port", type=int, default=None, help="server port (default: a free one)")
    parser.add_argument("--data-dir", type=Path, default=None, help="where the runs' DATA_DIRs go")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the requests")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="web processes (serve --workers N); above 1 the sandbox runs as its own process",
    )
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="diagnosis: serve with --no-worker (no in-process follow-up jobs competing "
        "for the database)",
    )
    parser.add_argument(
        "--postgresql",
        action="store_true",
        help="a throwaway PostgreSQL cluster (tests/pgserver.py), a new database per run",
    )
    parser.add_argument(
        "--redis", action="store_true", help="a throwaway redis-server as the job queue"
    )
    parser.add_argument(
        "--outgoing",
        action="store_true",
        help="register one outgoing webhook endpoint (message.received) on a loopback "
        "receiver: what emitting and delivering events costs per inbound webhook",
    )
    args = parser.parse_args(argv)
    if args.count < 1 or args.concurrency < 1 or args.warmup < 0 or args.history < 0:
        parser.error("--count and --concurrency must be positive, --warmup and --history >= 0")
    if args.postgresql and args.history:
        parser.error("--postgresql takes --history 0 (the history is seeded into SQLite)")

    exit_on_sigterm()
    base = args.data_dir or Path(tempfile.mkdtemp(prefix="relaydesk-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    runs = [("empty database", base / "empty", 0)]
    if args.history:
        label = f"{args.history:,}-message history"
        runs.append((label, base / "history", args.history))
    for _, path, _ in runs:
        if path.exists():
            parser.error(f"{path} already exists; choose another --data-dir or remove it")
    conversations = args.conversations or max(1, args.history // 20)
    rng = random.Random(args.seed)
    print(
        f"webhook ingest: {args.count:,} timed webhooks per run at concurrency "
        f"{args.concurrency}, {args.warmup} warm-up, {args.dup_ratio:.0%} repeats; data in {base}"
    )
    print(environment())
    backing = Backing(args.postgresql, args.redis)
    results = []
    try:
        backing.start()
        print(f"{backing.describe()}; {args.workers} web process(es)")
        for label, path, history in runs:
            results.append(run_once(label, path, history, conversations, args, rng, backing))
        summary(results, args.concurrency)
    finally:
        backing.stop()
        if not args.keep:
            for _, path, _ in runs:
                shutil.rmtree(path, ignore_errors=True)
            if args.data_dir is None:
                shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"  data kept in {base}")
    failed = [text for r in results for ok, text in r.checks if not ok]
    if failed or len(results) < len(runs):
        print(f"\nFAIL ({len(failed)} checks failed)")
        return 1
    print("\nall checks PASS")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
