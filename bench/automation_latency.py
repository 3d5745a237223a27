"""Benchmark: how soon an inbound message gets its automatic answer handed to Twilio.

What it measures
    The time from sending a signed inbound webhook (POST /twilio/inbound) to the moment
    relaydesk hands the automatic answer to Twilio (the Messages.create call reaches
    Twilio), in two modes, each on a fresh server:
      - ai       the global AI auto-reply against a fake OpenAI-compatible model that
                 answers at once (tests/fakes/openai.py FakeOpenAI on loopback, in this
                 process), so the figures are relaydesk's own overhead, not a model's
                 thinking time;
      - classic  the static auto-reply (no model);
      - tools    (only with --modes) the AI auto-reply with one tool (issue 23): a GET of
                 an order's status on a loopback shop (tests/fakes/shop.py, in this
                 process, answering at once, with its secret header); the fake model
                 asks for the tool in its first round and answers in its second, so the
                 difference to `ai` is the cost of one tool round: a second model call,
                 the tool's HTTP call and keeping the call on the run.
    With --emulator separate the emulator runs as its own process (`relaydesk sandbox`),
    as in live_under_load.py, so that the server's CPU is relaydesk's alone (the
    emulator's is printed apart); by default it runs inside the server, as `relaydesk
    serve` in sandbox mode has it.
    --messages webhooks per mode (default 300), each from its own customer number, sent
    open-loop at a fixed offered rate (--rate, default 20/s) or, with --burst, all at
    once over --concurrency connections. Prints p50/p90/p99/max in ms, the answers per
    second achieved, where the time goes (stages, see below) and the server's CPU.
    The webhooks go out as prepared raw HTTP/1.1 requests over keep-alive connections
    (benchlib.KeepAlive): the load generator shares the 2 cores with the server, and
    costs about 0.1 ms of CPU per webhook (printed). Until December 2026 it was httpx's
    AsyncClient, at 4.5 ms per webhook: as much as the answer it measured, so figures
    taken before then include that competition for the CPU.

    --model-seconds makes the fake model take that long for each answer (a real model's
    thinking time): the answers then wait for it MODEL_CONCURRENCY at a time
    (--model-concurrency to change it), so 1,000 at once take about 1,000 / that
    number seconds. --postgresql and --redis run the server on a throwaway PostgreSQL
    cluster and redis-server (their CPU is printed apart), and --workers N runs
    `serve --no-worker` with N `relaydesk worker` processes, as a scaled-out setup has
    it. The peak memory printed is the peak resident set (VmHWM) of relaydesk's
    processes, added up.

    The pipeline's debounce window (automation rule `debounce_seconds`, 5 s by default:
    wait for more messages of the same burst) is set to 0 (--debounce to change it), so
    the figures show the pipeline without the deliberate wait; the loop guard is raised to
    its maximum (1000 automatic answers per customer per hour) and every message comes
    from a distinct customer, so the guard never triggers.

How the end is timed
    The server runs in sandbox mode; its built-in Twilio emulator stores every
    Messages.create it accepts in <DATA_DIR>/sandbox.db with `date_created` =
    time.time() (full precision; the API shows it rounded to seconds). The benchmark
    records time.time() just before it sends each webhook and, when all answers are in,
    reads the emulator's timestamps: same machine, same clock, so there is no polling
    granularity in the figures (the file is only polled, every 50 ms, to know when to
    stop). The stages, which add up to the latency, come from the timestamps relaydesk
    itself stores in app.db (same clock too):
      receive     webhook sent -> request parsed, signature checked (inbound
                  `messages.created_at`)
      to job      -> the follow-up job messaging.inbound_received claimed the message
                  (`processed_at`): group commit of the webhook, enqueue, huey hop 1;
                  0 when the run was created as the webhook was stored (one-process
                  `serve`: `processed_at` is then the storing time and the hop to the
                  run's job is part of `run`)
      run         -> the automation run is about to store its answer
                  (`automation_runs.finished_at`): run row created and committed,
                  claim, decide, context + model call (ai); the answers to a batch
                  of webhooks follow its job in the same thread as one job, claimed,
                  decided and stored together (an answer that needs the model is
                  asked in the model threads, and stored with the others that are
                  ready then)
      to deliver  -> messaging.deliver claimed the answer (outbound
                  `submit_started_at`): answer committed, claim (the delivery
                  follows the run in its thread; a queue hop before 963205f)
      twilio call -> the emulator accepted Messages.create (its `date_created`):
                  claim commit, HTTP request to the emulator (in the same server)
    For reference also `ack`: webhook sent -> its 200 answer (stored and committed).

Checks (exit status 1 if any fails)
    Every webhook answered 200; every customer got exactly one answer at the emulator
    and exactly one automatic outbound message with a Twilio SID in relaydesk; every
    run's outcome is the mode's (ai / auto_reply); in ai mode the model was called once
    per message and each answer echoes its own customer's message.

Run (about 40 s with the defaults):

    .venv/bin/python bench/automation_latency.py
    .venv/bin/python bench/automation_latency.py --messages 1000 --burst
    .venv/bin/python bench/automation_latency.py --rate 1 --messages 30   # sparse traffic
    .venv/bin/python bench/automation_latency.py --modes ai --debounce 5  # default window
    .venv/bin/python bench/automation_latency.py --modes ai,tools           # a tool round
    .venv/bin/python bench/automation_latency.py --modes ai --burst --messages 1000 \
        --model-seconds 1                                                   # a real model's pace
    .venv/bin/python bench/automation_latency.py --burst --messages 1000 \
        --postgresql --redis --workers 2                                    # scaled out

(PYTHONPATH=/tmp/rev/src selects another relaydesk revision, as in webhook_ingest.py.)
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from benchlib import (
    BENCH_ACCOUNT_SID,
    HOST,
    REPO,
    Backing,
    KeepAlive,
    PgConnection,
    Server,
    environment,
    exit_on_sigterm,
    free_port,
    machine_busy_cpu,
    percentile,
    run_cli,
    separate_emulator,
    server_env,
    session_cpu,
    session_peak_rss_mb,
    signed_post,
    thread_cpu,
)
from relaydesk.core.config import SANDBOX_DEFAULT_FROM, Settings

sys.path.insert(0, str(REPO))  # for tests.fakes
from tests.fakes import FakeOpenAI
from tests.fakes.openai import echo_last_user_message
from tests.fakes.shop import API_KEY, Shop

MODES = ("ai", "classic")
ALL_MODES = (*MODES, "tools")
OUR_NUMBER = SANDBOX_DEFAULT_FROM
CLASSIC_TEXT = "Thanks for your message! We will get back to you within the hour."
MODEL = "gpt-4o-mini"
POLL_SECONDS = 0.05
EXPECTED_OUTCOME = {"ai": "ai", "classic": "auto_reply", "tools": "ai"}
EXPECTED_SOURCE = {"ai": "ai", "classic": "auto_reply", "tools": "ai"}
ORDER_TOOL = {
    "name": "order_status",
    "description": "The status of an order by its number, e.g. A-123",
    "parameters": {
        "type": "object",
        "properties": {"order_id": {"type": "string"}},
        "required": ["order_id"],
    },
    "secret_header": {"name": "X-Api-Key", "value": API_KEY},
}


def thinking(seconds: float) -> Any:
    """A model that takes `seconds` before it echoes the customer (--model-seconds)."""

    def reply(body: dict[str, Any]) -> str:
        time.sleep(seconds)
        return echo_last_user_message(body)

    return reply


def order_assistant(body: dict[str, Any]) -> Any:
    """Asks the shop once, then echoes the customer (so the echo check still holds)."""
    if not any(m["role"] == "tool" for m in body["messages"]):
        return {"tool_calls": [{"name": "order_status", "arguments": {"order_id": "A-123"}}]}
    said = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    return f"Echo: {said}"


STAGES = ("receive", "to job", "run", "to deliver", "twilio call")
HOPS = ("to job", "run")  # may include a huey queue hop (see the docstring)


@dataclass
class Webhook:
    """One prepared inbound message and what happened to it."""

    customer: str
    body: str
    data: bytes  # the whole signed HTTP request
    sent: float = 0.0  # time.time() just before the request
    acked: float = 0.0  # time.time() when the 200 arrived
    status: int = 0


@dataclass
class ModeResult:
    """Figures and checks of one mode."""

    mode: str
    count: int
    latencies_ms: list[float] = field(default_factory=list)
    stages_ms: dict[str, list[float]] = field(default_factory=dict)
    answered: int = 0
    send_seconds: float = 0.0
    sender_cpu: float = 0.0  # this benchmark's sending thread, while it sent
    answers_per_s: float = 0.0
    server_cpu: float = 0.0
    emulator_cpu: float = 0.0  # the emulator as its own process (--emulator separate)
    loop_thread_cpu: float = 0.0
    other_cpu: float = 0.0
    backing_cpu: float = 0.0  # PostgreSQL and Redis (--postgresql, --redis)
    peak_rss_mb: float = 0.0  # relaydesk's processes (serve, and --workers), VmHWM added up
    processes: int = 1  # relaydesk's processes: serve, and the --workers
    wall: float = 0.0
    checks: list[tuple[bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return bool(self.checks) and all(ok for ok, _ in self.checks)


# --- setup ---------------------------------------------------------------------------


def customer_number(i: int) -> str:
    """A distinct Polish mobile number per customer (i < 1,000,000)."""
    return f"+48600{i:06d}"


def build_webhooks(port: int, first: int, count: int, tag: str) -> list[Webhook]:
    """Signed inbound webhooks as Twilio would POST them, one customer each."""
    out = []
    for i in range(first, first + count):
        sid = f"SM{tag}{i:030d}"[:34]
        customer = customer_number(i)
        body = f"bench message {i}: is the blue one still in stock?"
        params = {
            "ToCountry": "US",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "SmsSid": sid,
            "SmsStatus": "received",
            "Body": body,
            "FromCountry": "PL",
            "To": OUR_NUMBER,
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": BENCH_ACCOUNT_SID,
            "From": customer,
            "ApiVersion": "2010-04-01",
        }
        out.append(Webhook(customer, body, signed_post(port, "/twilio/inbound", params)))
    return out


def configure(
    base: str, token: str, mode: str, fake_url: str, debounce: float, shop_url: str = ""
) -> None:
    """Rules (debounce, loop guard) and the mode's switch, through the REST API."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:

        def put(path: str, payload: dict[str, Any]) -> None:
            answer = client.put(path, json=payload)
            if answer.status_code != 200:
                raise SystemExit(f"PUT {path} answered {answer.status_code}: {answer.text[:300]}")

        put("/api/automation/rules", {"debounce_seconds": debounce, "loop_guard_per_hour": 1000})
        if mode == "tools":
            tool = {**ORDER_TOOL, "url": f"{shop_url}/api/orders/{{order_id}}"}
            answer = client.post("/api/ai/tools", json=tool)
            if answer.status_code != 201:
                raise SystemExit(f"POST /api/ai/tools answered {answer.status_code}: {answer.text}")
        if mode in ("ai", "tools"):
            put(
                "/api/ai/config",
                {
                    "enabled": True,
                    "provider": "openai",
                    "model": MODEL,
                    "base_url": fake_url,
                    "api_key": "bench-openai-key",
                },
            )
        else:
            put("/api/auto-reply", {"enabled": True, "message": CLASSIC_TEXT})


# --- sending -------------------------------------------------------------------------


async def _send(
    port: int, webhooks: list[Webhook], rate: float, burst: bool, concurrency: int
) -> float:
    """Send open-loop at `rate` per second (or all at once); returns the sending time."""
    pool = KeepAlive(port, concurrency)

    async def one(w: Webhook) -> None:
        def started() -> None:
            w.sent = time.time()

        try:
            w.status = await pool.post(w.data, 60, started)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            w.status = 0
        w.acked = time.time()

    start = time.perf_counter()
    tasks = []
    for i, w in enumerate(webhooks):
        if not burst:
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(w)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    pool.close()
    return elapsed


def send(base: str, webhooks: list[Webhook], rate: float, burst: bool, concurrency: int) -> float:
    """Send the webhooks to the server at `base` (see _send); returns the sending time."""
    port = urlsplit(base).port
    assert port is not None, base
    return asyncio.run(_send(port, webhooks, rate, burst, concurrency))


def thread_cpu_seconds() -> float:
    """CPU time of the calling thread so far (the sending thread's own cost)."""
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


# --- reading the outcome -------------------------------------------------------------


def connect_ro(path: Path) -> sqlite3.Connection:
    """A read-only connection that never blocks the server's writers (WAL)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    conn.execute("PRAGMA query_only = 1")
    return conn


def emulator_count(sandbox_db: Path) -> int:
    """How many messages relaydesk has handed to the emulator so far."""
    if not sandbox_db.exists():
        return 0
    conn = connect_ro(sandbox_db)
    try:
        return int(
            conn.execute(
                "SELECT count(*) FROM messages WHERE direction = 'outbound-api'"
            ).fetchone()[0]
        )
    finally:
        conn.close()


def wait_for_answers(sandbox_db: Path, expected: int, stall: float) -> bool:
    """Poll until `expected` answers reached the emulator or none came for `stall` s."""
    last, last_change = -1, time.monotonic()
    while True:
        n = emulator_count(sandbox_db)
        if n >= expected:
            return True
        if n != last:
            last, last_change = n, time.monotonic()
        elif time.monotonic() - last_change > stall:
            return False
        time.sleep(POLL_SECONDS)


def emulator_answers(sandbox_db: Path, column: str = "body") -> dict[str, list[tuple[float, str]]]:
    """(date_created, `column`: body or sid) of every Messages.create per recipient,
    oldest first."""
    if column not in ("body", "sid"):
        raise ValueError(column)
    conn = connect_ro(sandbox_db)
    try:
        rows = conn.execute(
            f"SELECT to_addr, date_created, {column} FROM messages "  # noqa: S608 (checked)
            "WHERE direction = 'outbound-api' ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()
    out: dict[str, list[tuple[float, str]]] = {}
    for to_addr, created, value in rows:
        out.setdefault(to_addr, []).append((float(created), value))
    return out


def _epoch(value: Any) -> float | None:
    """A datetime column as SQLite holds it (UTC text or datetime) in epoch seconds."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass
class Stored:
    """What relaydesk's own database says about one customer's message."""

    received_at: float | None = None
    processed_at: float | None = None
    finished_at: float | None = None
    submit_started_at: float | None = None
    outcomes: list[str] = field(default_factory=list)
    answers_with_sid: int = 0
    answers_without_sid: int = 0
    answer_sources: list[str] = field(default_factory=list)


def relaydesk_view(app_db: Path | str) -> dict[str, Stored]:
    """Per customer: follow-up claim time, run outcomes and times, automatic answers (from
    the SQLite file, or from PostgreSQL when `app_db` is a URL)."""
    conn: Any = PgConnection(app_db) if isinstance(app_db, str) else connect_ro(app_db)
    out: dict[str, Stored] = {}
    try:
        for participant, created, processed in conn.execute(
            "SELECT participant, created_at, processed_at FROM messages WHERE direction = 'inbound'"
        ):
            row = out.setdefault(participant, Stored())
            row.received_at, row.processed_at = _epoch(created), _epoch(processed)
        for participant, outcome, finished in conn.execute(
            "SELECT participant, outcome, finished_at FROM automation_runs ORDER BY id"
        ):
            row = out.setdefault(participant, Stored())
            row.outcomes.append(str(outcome))
            row.finished_at = _epoch(finished)
        for participant, sid, source, started in conn.execute(
            "SELECT participant, sid, source, submit_started_at FROM messages "
            "WHERE direction = 'outbound'"
        ):
            row = out.setdefault(participant, Stored())
            row.submit_started_at = _epoch(started)
            row.answer_sources.append(str(source))
            if sid:
                row.answers_with_sid += 1
            else:
                row.answers_without_sid += 1
    finally:
        conn.close()
    return out


# --- one mode ------------------------------------------------------------------------


def run_mode(
    mode: str,
    base_dir: Path,
    fake: FakeOpenAI,
    shop: Shop,
    args: argparse.Namespace,
    backing: Backing,
) -> ModeResult:
    """Fresh server, configure the mode, warm up, send, wait, read, check."""
    how = f"all at once over {args.concurrency} connections" if args.burst else f"{args.rate:g}/s"
    what = {
        "ai": "AI auto-reply, fake model answering "
        + (f"after {args.model_seconds:g} s" if args.model_seconds else "at once"),
        "classic": "static auto-reply",
        "tools": "AI auto-reply calling one tool, model and shop answering at once",
    }[mode]
    print(
        f"\n== {mode}: {args.messages} webhooks, {how}, one customer each ({what}) ==", flush=True
    )
    data_dir = base_dir / mode
    data_dir.mkdir(parents=True)
    port = free_port()
    # The fake model listens on loopback, which the AI settings refuse by default (SSRF
    # guard); older revisions ignore the variable.
    extra = {"LLM_ALLOW_PRIVATE_NETWORKS": "true", "TOOLS_ALLOW_PRIVATE_NETWORKS": "true"}
    if args.worker_threads:
        extra["WORKER_THREADS"] = str(args.worker_threads)
    if args.model_concurrency:
        extra["MODEL_CONCURRENCY"] = str(args.model_concurrency)
    if args.twilio_ms:
        extra["SANDBOX_LATENCY_MS"] = str(args.twilio_ms)
    base = f"http://{HOST}:{port}"
    emulator: Server | None = None
    if args.emulator == "separate":
        emulator = separate_emulator(data_dir, base, extra)
    env = server_env(data_dir, port, **extra, **backing.env())
    result = ModeResult(mode, args.messages, processes=1 + args.workers)
    server = Server(
        data_dir, port, env, data_dir / "server.log", ["--no-worker"] if args.workers else []
    )
    workers = [
        Server(data_dir, 0, env, data_dir / f"worker-{i}.log", [], "worker")
        for i in range(args.workers)
    ]
    run_cli(["migrate"], env, data_dir)
    token = run_cli(["token", "create", "bench", "--role", "admin"], env, data_dir)
    token = token.strip().splitlines()[-1]
    fake.reset()
    if mode == "tools":
        fake.reply_with(order_assistant)
    elif args.model_seconds:
        fake.reply_with(thinking(args.model_seconds))
    sandbox_db = data_dir / "sandbox.db"
    app_db: Path | str = env.get("DATABASE_URL") or data_dir / "app.db"
    relaydesk = [server, *workers]
    try:
        if emulator is not None:
            emulator.start()
        server.start()
        for worker in workers:
            worker.start()
        configure(base, token, mode, fake.base_url, args.debounce, shop.base)
        # Warm-up customers (numbers after the timed ones): first model client, caches.
        warm = build_webhooks(port, args.messages, args.warmup, "w")
        timed = build_webhooks(port, 0, args.messages, "t")
        if warm:
            send(base, warm, args.rate, False, args.concurrency)
            if not wait_for_answers(sandbox_db, len(warm), args.stall):
                print(f"  warm-up answers missing\n{server.log_tail()}")
            time.sleep(0.2)
        model_calls_before, shop_calls_before = len(fake.requests), len(shop.seen)
        emulator_cpu = (lambda: session_cpu(emulator.pid)) if emulator else (lambda: 0.0)
        emulator0, backing0 = emulator_cpu(), backing.cpu()

        def relaydesk_cpu() -> float:
            return sum(session_cpu(p.pid) for p in relaydesk)

        cpu0, machine0, client0 = relaydesk_cpu(), machine_busy_cpu(), time.process_time()
        loop0 = thread_cpu(server.pid).get(server.pid, 0.0)
        wall0 = time.perf_counter()
        sender0 = thread_cpu_seconds()
        result.send_seconds = send(base, timed, args.rate, args.burst, args.concurrency)
        result.sender_cpu = thread_cpu_seconds() - sender0
        complete = wait_for_answers(sandbox_db, len(warm) + len(timed), args.stall)
        result.wall = time.perf_counter() - wall0
        cpu1, machine1, client1 = relaydesk_cpu(), machine_busy_cpu(), time.process_time()
        result.loop_thread_cpu = thread_cpu(server.pid).get(server.pid, 0.0) - loop0
        result.server_cpu = cpu1 - cpu0
        result.emulator_cpu = emulator_cpu() - emulator0
        result.backing_cpu = backing.cpu() - backing0
        result.other_cpu = max(
            0.0,
            machine1
            - machine0
            - result.server_cpu
            - result.emulator_cpu
            - result.backing_cpu
            - (client1 - client0),
        )
        if not complete:
            print(f"  answers stopped coming (no new one for {args.stall:g} s)")
        time.sleep(args.settle)  # a duplicate answer would show up meanwhile
        model_calls = len(fake.requests) - model_calls_before
        shop_calls = len(shop.seen) - shop_calls_before
        answers = emulator_answers(sandbox_db)
        stored = relaydesk_view(app_db)
        result.peak_rss_mb = sum(session_peak_rss_mb(p.pid) for p in relaydesk)
    finally:
        for worker in workers:
            worker.stop()
        server.stop()
        if emulator is not None:
            emulator.stop()
        if args.keep:
            print(f"  data kept in {data_dir}")

    evaluate(result, mode, timed, warm, answers, stored, model_calls, shop_calls)
    if not result.ok:
        print(f"  server log (last lines):\n{server.log_tail()}")
    report(result)
    return result


def evaluate(
    r: ModeResult,
    mode: str,
    timed: list[Webhook],
    warm: list[Webhook],
    answers: dict[str, list[tuple[float, str]]],
    stored: dict[str, Stored],
    model_calls: int,
    shop_calls: int = 0,
) -> None:
    """Latencies, stages and checks of one mode."""
    stages: dict[str, list[float]] = {name: [] for name in (*STAGES, "ack")}
    handed: list[float] = []
    for w in timed:
        got = answers.get(w.customer, [])
        if not got:
            continue
        at = got[0][0]
        handed.append(at)
        r.latencies_ms.append((at - w.sent) * 1000)
        stages["ack"].append((w.acked - w.sent) * 1000)
        row = stored.get(w.customer)
        if row is None:
            continue
        marks = (
            w.sent,
            row.received_at,
            row.processed_at,
            row.finished_at,
            row.submit_started_at,
            at,
        )
        if any(m is None for m in marks):
            continue
        for name, start, end in zip(STAGES, marks, marks[1:], strict=False):
            assert start is not None and end is not None
            stages[name].append((end - start) * 1000)
    r.latencies_ms.sort()
    r.stages_ms = {name: sorted(values) for name, values in stages.items()}
    r.answered = len(handed)
    if handed:
        span = max(handed) - min(w.sent for w in timed)
        r.answers_per_s = len(handed) / span if span > 0 else float("nan")

    statuses = Counter(w.status for w in (*warm, *timed))
    r.checks.append(
        (
            set(statuses) == {200},
            "every webhook answered 200"
            + ("" if set(statuses) == {200} else f" (statuses: {dict(statuses)}; 0 = no answer)"),
        )
    )
    customers = [w.customer for w in (*warm, *timed)]
    per_customer = Counter(len(answers.get(c, [])) for c in customers)
    extra = set(answers) - set(customers)
    one_each = per_customer == Counter({1: len(customers)}) and not extra
    detail = ", ".join(f"{k} answer(s): {n}" for k, n in sorted(per_customer.items()))
    if extra:
        detail += f"; {len(extra)} answers to unknown numbers"
    r.checks.append(
        (
            one_each,
            f"exactly one answer per customer at Twilio ({len(customers)} customers; {detail})",
        )
    )
    sid_ok = sum(
        1
        for c in customers
        if (s := stored.get(c)) is not None
        and s.answers_with_sid == 1
        and s.answers_without_sid == 0
        and s.answer_sources == [EXPECTED_SOURCE[mode]]
    )
    r.checks.append(
        (
            sid_ok == len(customers),
            f"relaydesk stored exactly one '{EXPECTED_SOURCE[mode]}' answer with a Twilio SID "
            f"for {sid_ok}/{len(customers)} customers",
        )
    )
    outcomes = Counter(o for c in customers for o in (stored.get(c) or Stored()).outcomes)
    want = EXPECTED_OUTCOME[mode]
    r.checks.append(
        (
            outcomes == Counter({want: len(customers)}),
            f"run outcomes {dict(outcomes)} (want {want} x {len(customers)})",
        )
    )
    if mode in ("ai", "tools"):
        rounds = 2 if mode == "tools" else 1
        r.checks.append(
            (
                model_calls == rounds * len(timed),
                f"model called {model_calls} times for {len(timed)} timed messages "
                f"({rounds} round(s) each)",
            )
        )
        if mode == "tools":
            r.checks.append(
                (
                    shop_calls == len(timed),
                    f"the shop was called {shop_calls} times for {len(timed)} timed messages",
                )
            )
        echoed = sum(
            1 for w in timed if [b for _, b in answers.get(w.customer, [])] == [f"Echo: {w.body}"]
        )
        r.checks.append(
            (
                echoed == len(timed),
                f"{echoed}/{len(timed)} answers echo their own customer's message",
            )
        )
    else:
        right = sum(
            1 for w in timed if [b for _, b in answers.get(w.customer, [])] == [CLASSIC_TEXT]
        )
        r.checks.append(
            (right == len(timed), f"{right}/{len(timed)} answers carry the static text")
        )


# --- output --------------------------------------------------------------------------


def _pcts(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"p50 {percentile(values, 50):7.1f}  p90 {percentile(values, 90):7.1f}  "
        f"p99 {percentile(values, 99):7.1f}  max {values[-1]:7.1f}"
    )


def report(r: ModeResult) -> None:
    """One mode's figures and checks."""
    print(
        f"  sent              {r.count} in {r.send_seconds:.2f} s "
        f"({r.count / max(r.send_seconds, 1e-9):.1f}/s offered)"
    )
    sender = r.sender_cpu / max(r.send_seconds, 1e-9)
    print(
        f"  load generator    {sender:.2f} cores while sending, "
        f"{r.sender_cpu / max(r.count, 1) * 1000:.2f} ms per webhook (raw keep-alive HTTP/1.1)"
    )
    print(f"  answered          {r.answered} / {r.count}")
    print(f"  latency ms        {_pcts(r.latencies_ms)}   (webhook sent -> answer at Twilio)")
    print(f"  answers/s         {r.answers_per_s:.1f}   (answers / first send to last answer)")
    print("  stages ms         (they add up to the latency; see the docstring)")
    for name in STAGES:
        hop = "  (may include a huey queue hop)" if name in HOPS else ""
        print(f"    {name:<15} {_pcts(r.stages_ms.get(name, []))}{hop}")
    print(f"    {'(webhook ack)':<15} {_pcts(r.stages_ms.get('ack', []))}")
    cores = r.server_cpu / r.wall if r.wall else 0.0
    per = r.server_cpu / max(r.answered, 1) * 1000
    loop = r.loop_thread_cpu / r.wall if r.wall else 0.0
    one_gil = r.processes == 1 and cores >= 0.9
    bound = "  <- CPU-bound: one process, one GIL" if one_gil else ""
    print(
        f"  server CPU        {cores:.2f} cores (event-loop thread {loop:.2f}, other threads "
        f"{cores - loop:.2f}), {per:.1f} ms per answer{bound}"
    )
    if r.backing_cpu:
        backing = r.backing_cpu / r.wall if r.wall else 0.0
        per_backing = r.backing_cpu / max(r.answered, 1) * 1000
        print(
            f"  database, queue   {backing:.2f} cores, {per_backing:.1f} ms per answer "
            "(PostgreSQL and Redis)"
        )
    print(f"  peak memory       {r.peak_rss_mb:.0f} MB (relaydesk's processes, VmHWM added up)")
    if r.emulator_cpu:
        twilio = r.emulator_cpu / r.wall if r.wall else 0.0
        per_twilio = r.emulator_cpu / max(r.answered, 1) * 1000
        print(f"  emulator CPU      {twilio:.2f} cores, {per_twilio:.1f} ms per answer (Twilio)")
    other = r.other_cpu / r.wall if r.wall else 0.0
    warning = "  <- other work on this machine: figures are disturbed" if other > 0.15 else ""
    print(f"  other processes   {other:.2f} cores (not the server, not this benchmark){warning}")
    for ok, text in r.checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")


def summary(results: list[ModeResult], args: argparse.Namespace) -> None:
    """Both modes side by side."""
    how = "burst" if args.burst else f"{args.rate:g}/s"
    print(
        f"\n== summary ({args.messages} messages per mode, {how}, debounce {args.debounce:g} s) =="
    )
    print(
        f"  {'mode':<9}{'answered':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'ans/s':>8}{'CPU ms':>8}{'ack p99':>9}{'peak MB':>9}  check"
    )
    for r in results:
        lat = r.latencies_ms
        per = r.server_cpu / max(r.answered, 1) * 1000
        acks = r.stages_ms.get("ack", [])
        print(
            f"  {r.mode:<9}{r.answered:>9}{percentile(lat, 50):>9.1f}{percentile(lat, 90):>9.1f}"
            f"{percentile(lat, 99):>9.1f}{(lat[-1] if lat else float('nan')):>9.1f}"
            f"{r.answers_per_s:>8.1f}{per:>8.1f}{percentile(acks, 99):>9.1f}"
            f"{r.peak_rss_mb:>9.0f}  {'PASS' if r.ok else 'FAIL'}"
        )


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(
        description="Latency from an inbound webhook to its automatic answer handed to Twilio."
    )
    parser.add_argument("--messages", type=int, default=300, help="timed webhooks per mode")
    parser.add_argument("--rate", type=float, default=20.0, help="offered webhooks per second")
    parser.add_argument(
        "--burst", action="store_true", help="send all messages at once instead of at --rate"
    )
    parser.add_argument(
        "--concurrency", type=int, default=32, help="connections in parallel (at most)"
    )
    parser.add_argument(
        "--modes", default=",".join(MODES), help="comma-separated: ai,classic,tools"
    )
    parser.add_argument("--warmup", type=int, default=10, help="untimed messages first")
    parser.add_argument(
        "--debounce", type=float, default=0.0, help="the debounce rule in seconds (default 0)"
    )
    parser.add_argument(
        "--worker-threads",
        type=int,
        default=None,
        help="WORKER_THREADS of the server (default: relaydesk's, "
        f"{Settings.model_fields['worker_threads'].default})",
    )
    parser.add_argument(
        "--stall", type=float, default=30.0, help="give up when no answer came for this long"
    )
    parser.add_argument(
        "--settle", type=float, default=2.0, help="wait after the last answer for duplicates"
    )
    parser.add_argument(
        "--emulator",
        choices=("embedded", "separate"),
        default="embedded",
        help="the Twilio emulator inside the server (default; its work counts as the "
        "server's) or as its own process, like Twilio",
    )
    parser.add_argument(
        "--model-seconds",
        type=float,
        default=0.0,
        help="the fake model takes this long to answer (ai mode; default 0: at once)",
    )
    parser.add_argument(
        "--model-concurrency",
        type=int,
        default=None,
        help="MODEL_CONCURRENCY of the server (default: relaydesk's)",
    )
    parser.add_argument(
        "--twilio-ms",
        type=int,
        default=0,
        help="the emulator answers each Messages.create after this long (SANDBOX_LATENCY_MS; "
        "default 0)",
    )
    parser.add_argument(
        "--postgresql", action="store_true", help="a throwaway PostgreSQL cluster, not SQLite"
    )
    parser.add_argument(
        "--redis", action="store_true", help="a throwaway redis-server as the job queue"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="`serve --no-worker` and this many `relaydesk worker` processes "
        "(default 0: the worker threads inside serve)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in ALL_MODES for m in modes):
        parser.error(f"--modes takes {', '.join(ALL_MODES)}")
    if args.messages < 1 or args.rate <= 0 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--messages, --rate and --concurrency must be positive, --warmup >= 0")
    if args.messages + args.warmup > 1_000_000:
        parser.error("at most 1,000,000 messages (customer numbers)")
    if args.model_seconds < 0 or args.workers < 0 or (args.model_concurrency or 1) < 1:
        parser.error("--model-seconds and --workers cannot be negative")

    exit_on_sigterm()
    print(environment())
    threads = args.worker_threads or Settings.model_fields["worker_threads"].default
    print(
        f"automation latency: {args.messages} messages per mode "
        f"({'burst' if args.burst else f'{args.rate:g}/s offered'}), {args.warmup} warm-up, "
        f"debounce_seconds={args.debounce:g}, loop_guard_per_hour=1000, distinct customers, "
        f"{threads} worker threads"
    )
    print(
        "  end of each latency: the emulator's own date_created of the Messages.create call "
        "(same clock, no polling granularity)"
    )
    backing = Backing(args.postgresql, args.redis)
    backing.start()
    processes = (
        f"serve --no-worker + {args.workers} worker process(es)" if args.workers else "one serve"
    )
    model = f"the fake model answers after {args.model_seconds:g} s" if args.model_seconds else ""
    print(f"  {backing.describe()}; {processes}" + (f"; {model}" if model else ""))
    base_dir = Path(tempfile.mkdtemp(prefix="relaydesk-automation-"))
    fake = FakeOpenAI()
    fake.start()
    shop = Shop()
    shop.__enter__()
    results: list[ModeResult] = []
    try:
        for mode in modes:
            results.append(run_mode(mode, base_dir, fake, shop, args, backing))
        summary(results, args)
    finally:
        fake.stop()
        shop.__exit__(None, None, None)
        backing.stop()
        if not args.keep:
            shutil.rmtree(base_dir, ignore_errors=True)
    if len(results) < len(modes) or not all(r.ok for r in results):
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
