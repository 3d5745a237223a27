"""Benchmark: do automatic answers stay quick while a campaign, an index build and voice
notes run at the same time?

What it measures
    The latency from sending a signed inbound webhook (POST /twilio/inbound) to the moment
    the Twilio emulator accepts the automatic answer (its Messages.create), as in
    automation_latency.py, on one default `relaydesk serve` (SQLite, sandbox mode, the
    in-process worker with its live and bulk queues), in two phases on the same server:

      idle        --messages webhooks (default 200) at --rate (default 10/s), each from
                  its own customer, nothing else running;
      under load  at once (a) a --recipients campaign (default 10,000) at
                  --campaign-rate (default 200/s; CAMPAIGN_RATE_MPS, POST
                  /api/multi-sms/batches), (b) a knowledge index build (POST
                  /api/news/indices/build) over --articles synthetic articles (default
                  300, ~2,000 characters, about 3 passages each) written into
                  DATA_DIR/news/ in the news module's own format (news/files.py
                  write_category) before the server starts, embedded by the default
                  local model, and (c) --voice-notes voice notes (default 20): a few
                  seconds of espeak-ng speech as OGG/Opus, sent by the emulator's
                  simulated phone (POST /sandbox/phone/messages), so the file sits behind
                  the emulator's basic auth like Twilio's and relaydesk's media job
                  downloads, converts and transcribes it with the local Whisper model
                  (TRANSCRIPTION_PROVIDER=local, the default). A file served by the
                  benchmark itself would not do: relaydesk fetches only this Twilio
                  account's media URLs on the API host (media/download.py), whatever
                  MEDIA_ALLOW_PRIVATE_NETWORKS says (that one is for outbound media).
                  --lead seconds later (default 2), the same kind of webhooks as in the
                  idle phase, from other customers.

    The automatic answer is the classic static auto-reply (or, with --mode ai, the AI
    auto-reply against tests/fakes FakeOpenAI answering at once on loopback), with the
    automation rule debounce_seconds = 0 and the loop guard at its maximum, as in
    automation_latency.py. The end of each latency is the emulator's own date_created
    in sandbox.db (time.time() at acceptance, same clock as the sender's time.time()).

    --layout split runs the same work in three processes instead: `serve --no-worker`,
    `relaydesk worker --queue live` and `relaydesk worker --queue bulk` (the latter under
    `nice -n --bulk-nice`, default 10), to see what one process's GIL and the scheduler's
    fairness cost. --recipients 0, --articles 0 and --voice-notes 0 leave a kind of load
    out, to see which one hurts. --postgresql and --redis put relaydesk's database and
    job queue on a throwaway PostgreSQL cluster and redis-server (see campaign_rate.py).

    The emulator runs as its own process (`relaydesk sandbox`, --emulator separate, the
    default), as campaign_rate.py does: Twilio is not part of relaydesk, and the
    emulator's work for 200 campaign calls a second would otherwise run under the
    server's GIL and be counted as relaydesk's delay. SANDBOX_LATENCY_MS=100 (Twilio's
    answer time; the acceptance time is taken before it), SANDBOX_SENDER_MPS and
    SANDBOX_API_RPS high (1000), so that no automatic answer is refused with 429 because
    of the campaign. --emulator embedded runs it inside the server instead.

    Printed per phase: p50/p90/p99/max in ms, where the time goes (receive, to job, run,
    to deliver, twilio call: see automation_latency.py), the CPU of relaydesk (the server
    and its children such as ffmpeg), of the emulator and of other processes on the
    machine (above ~0.15 cores the figures are disturbed). For the load phase also: how
    many campaign messages the emulator accepted during the timed phase (and their rate),
    the index build's state at the end of the phase, the voice notes transcribed by then.
    Then it waits (--drain, at most) for the campaign, the build and the voice notes to
    finish, and reports when they did.

Checks (exit status 1 if any fails)
    every webhook answered 200; every timed, warm-up and voice-note customer got exactly
    one answer at the emulator; the campaign was sending during the timed load phase;
    the index build did not fail; no voice note failed; and the goal: p99 under load at
    most --max-ratio (2) times the idle p99.

Run (about 5 minutes on 2 cores with the defaults, most of it waiting for the build):

    .venv/bin/python bench/live_under_load.py
    .venv/bin/python bench/live_under_load.py --recipients 2000 --articles 100 \\
        --voice-notes 5 --messages 100                                  # quicker
    .venv/bin/python bench/live_under_load.py --mode ai

(PYTHONPATH=/tmp/rev/src selects another relaydesk revision, as in webhook_ingest.py; a
revision before the live/bulk split runs everything on one queue of WORKER_THREADS.)
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from automation_latency import (
    CLASSIC_TEXT,
    STAGES,
    Stored,
    Webhook,
    build_webhooks,
    configure,
    connect_ro,
    relaydesk_view,
    send,
)
from benchlib import (
    BENCH_ACCOUNT_SID,
    BENCH_AUTH_TOKEN,
    HOST,
    REPO,
    Backing,
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
)
from campaign_rate import BODY, default_concurrency, recipient_numbers
from relaydesk.core.config import Settings
from relaydesk.news import files as news_files

sys.path.insert(0, str(REPO))  # for tests.fakes
from tests.fakes import FakeOpenAI

# Customer numbers (+48600 then 6 digits, see automation_latency.customer_number) far
# above the campaign's (+4860 then 7 digits counting from 0: +48600000000 + i / 12).
IDLE_FIRST = 100_000
LOAD_FIRST = 200_000
WARM_FIRST = 300_000
VOICE_NUMBER = "+48790900{:03d}"  # the campaign's +4879 numbers end far below 0900000
POLL_SECONDS = 0.05
CATEGORIES = ("local", "sport", "economy", "culture")
VOCABULARY = """
the of and to in a is that for it as was with be by on not this are or from at which
but have an they you were she there been one all we their has would when if so no out
city council market price bank rate bakery bread shop street school water police fire
train bus road river bridge weather storm wind rain snow summer winter football match
team season player coach goal stadium league cup final concert music theatre film
festival museum art book library hospital doctor health nurse clinic energy power gas
solar farm harvest wheat milk cheese apple company workers jobs wages union factory port
ship ferry island coast beach government minister election vote mayor budget tax plan
law court judge report children students teachers parents families residents visitors
hotel restaurant cafe kitchen menu dinner morning evening night week month today
increase decrease announced expected opened closed started finished warned said
"""
WORDS = VOCABULARY.split()
SPEECH = (
    "Good morning, I would like to book a table for four people on Friday evening. "
    "Could you also tell me whether you have a vegetarian menu and free parking nearby? "
)


@dataclass
class Phase:
    """Figures of one timed phase."""

    name: str
    webhooks: list[Webhook]
    latencies_ms: list[float] = field(default_factory=list)
    stages_ms: dict[str, list[float]] = field(default_factory=dict)
    answered: int = 0
    send_seconds: float = 0.0
    started: float = 0.0  # time.time() of the first webhook
    ended: float = 0.0  # time.time() when the last answer was in (or the wait gave up)
    complete: bool = False
    server_cpu: float = 0.0
    emulator_cpu: float = 0.0
    backing_cpu: float = 0.0  # PostgreSQL and Redis
    other_cpu: float = 0.0
    wall: float = 0.0


@dataclass
class Load:
    """What the background work did."""

    batch_id: int | None = None
    build_job: int | None = None
    notes_sent: int = 0
    notes_webhook_ok: int = 0
    campaign_in_phase: int = 0
    campaign_rate_in_phase: float = 0.0
    campaign_at_phase_end: int = 0
    build_at_phase_end: str = "?"
    notes_at_phase_end: int = 0
    campaign_status: str = "?"
    campaign_done_after: float | None = None  # s after the load started
    build_status: str = "?"
    build_seconds: float | None = None
    build_result: dict[str, Any] | None = None
    notes_transcribed: int = 0
    notes_failed: int = 0
    notes_done_after: float | None = None
    drained_in: float | None = None


# --- setup ---------------------------------------------------------------------------


def write_articles(news_dir: Path, count: int, chars: int, rng: random.Random) -> int:
    """`count` synthetic articles in the news module's files; returns their characters."""
    by_category: dict[str, list[news_files.Article]] = {c: [] for c in CATEGORIES}
    total = 0
    for n in range(count):
        paragraphs, size = [], 0
        while size < chars:
            paragraph = " ".join(_sentence(rng) for _ in range(rng.randint(3, 6)))
            paragraphs.append(paragraph)
            size += len(paragraph)
        text = news_files.clean_text("\n\n".join(paragraphs))
        total += len(text)
        category = CATEGORIES[n % len(CATEGORIES)]
        by_category[category].append(
            news_files.Article(
                url=f"https://bench.example/{category}/{n}",
                title=news_files.clean_title(_sentence(rng)[:70]),
                text=text,
                source="https://bench.example/feed",
                published="2026-01-01",
                fetched_at="2026-01-01T06:00:00+00:00",
                content_hash=news_files.content_hash(text),
            )
        )
    for category, articles in by_category.items():
        if articles:
            news_files.write_category(news_dir, category, articles)
    return total


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 24))).capitalize() + "."


def voice_note(seconds: float) -> bytes | None:
    """About `seconds` of speech as a phone sends it (OGG/Opus); None without the tools."""
    if not shutil.which("espeak-ng") or not shutil.which("ffmpeg"):
        return None
    text = SPEECH * (int(seconds // 8) + 1)
    with tempfile.TemporaryDirectory() as folder:
        wav, ogg = Path(folder) / "speech.wav", Path(folder) / "note.ogg"
        subprocess.run(
            ["espeak-ng", "-v", "en", "-w", str(wav), "--stdin"],
            input=text.encode(),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(wav), "-t", f"{seconds:g}",
             "-c:a", "libopus", "-b:a", "24k", str(ogg)],
            check=True,
        )  # fmt: skip
        return ogg.read_bytes()


# --- reading the stores --------------------------------------------------------------


def answers_for(sandbox_db: Path, first: str, last: str) -> dict[str, list[tuple[float, str]]]:
    """(date_created, body) of every message the emulator accepted for numbers in
    [first, last] (fixed-width numbers compare as text), per number, oldest first."""
    if not sandbox_db.exists():
        return {}
    try:
        conn = connect_ro(sandbox_db)
    except sqlite3.Error:
        return {}
    try:
        rows = conn.execute(
            "SELECT to_addr, date_created, body FROM messages WHERE direction = 'outbound-api' "
            "AND to_addr BETWEEN ? AND ? ORDER BY seq",
            (first, last),
        ).fetchall()
    except sqlite3.Error:
        return {}
    finally:
        conn.close()
    out: dict[str, list[tuple[float, str]]] = {}
    for to_addr, created, body in rows:
        out.setdefault(str(to_addr), []).append((float(created), str(body)))
    return out


def campaign_times(sandbox_db: Path, numbers: set[str]) -> list[float]:
    """date_created of every campaign message the emulator accepted, sorted."""
    if not sandbox_db.exists():
        return []
    conn = connect_ro(sandbox_db)
    try:
        rows = conn.execute(
            "SELECT to_addr, date_created FROM messages WHERE direction = 'outbound-api'"
        ).fetchall()
    finally:
        conn.close()
    return sorted(float(c) for to, c in rows if to in numbers)


def wait_for_answers(sandbox_db: Path, webhooks: list[Webhook], stall: float) -> tuple[bool, float]:
    """Poll until every customer of `webhooks` has an answer or none came for `stall` s;
    returns whether all came and time.time() at the end of the wait."""
    first, last = webhooks[0].customer, webhooks[-1].customer
    seen, last_change = -1, time.monotonic()
    while True:
        n = len(answers_for(sandbox_db, first, last))
        if n >= len(webhooks):
            return True, time.time()
        if n != seen:
            seen, last_change = n, time.monotonic()
        elif time.monotonic() - last_change > stall:
            return False, time.time()
        time.sleep(POLL_SECONDS)


def voice_state(app_db: Path | str) -> tuple[int, int]:
    """(voice notes transcribed, voice notes failed) in relaydesk's attachments."""
    conn: Any = PgConnection(app_db) if isinstance(app_db, str) else connect_ro(app_db)
    try:
        # A failed transcription is noted in `error` of a stored file.
        done, failed = conn.execute(
            "SELECT count(transcript), coalesce(sum(CASE WHEN state IN ('failed', 'refused') "
            "OR (state = 'stored' AND transcript IS NULL) THEN 1 ELSE 0 END), 0) "
            "FROM attachments WHERE content_type LIKE ?",
            ("audio/%",),
        ).fetchone()
    except sqlite3.Error:
        return 0, 0
    finally:
        conn.close()
    return int(done), int(failed)


def job(client: httpx.Client, job_id: int | None) -> dict[str, Any]:
    """GET /api/jobs/{id} (empty when there is none)."""
    if job_id is None:
        return {}
    answer = client.get(f"/api/jobs/{job_id}")
    return answer.json() if answer.status_code == 200 else {}


def job_text(found: dict[str, Any]) -> str:
    """A job's state in a few words."""
    if not found:
        return "no job"
    status = str(found.get("status"))
    if status == "running" and found.get("percent") is not None:
        return f"running ({float(found['percent']):.0f}%)"
    if status == "failed":
        return f"failed: {found.get('error')}"
    return status


# --- the phases ----------------------------------------------------------------------


def timed_phase(
    phase: Phase,
    base: str,
    sandbox_db: Path,
    args: argparse.Namespace,
    cpu: dict[str, Any],
) -> None:
    """Send the phase's webhooks at --rate and wait for their answers."""
    server0, emulator0, backing0 = cpu["server"](), cpu["emulator"](), cpu["backing"]()
    machine0, client0, wall0 = machine_busy_cpu(), time.process_time(), time.perf_counter()
    phase.started = time.time()
    phase.send_seconds = send(base, phase.webhooks, args.rate, False, args.concurrency)
    phase.complete, phase.ended = wait_for_answers(sandbox_db, phase.webhooks, args.stall)
    phase.wall = time.perf_counter() - wall0
    phase.server_cpu = cpu["server"]() - server0
    phase.emulator_cpu = cpu["emulator"]() - emulator0
    phase.backing_cpu = cpu["backing"]() - backing0
    used = machine_busy_cpu() - machine0 - (time.process_time() - client0)
    phase.other_cpu = max(0.0, used - phase.server_cpu - phase.emulator_cpu - phase.backing_cpu)
    if not phase.complete:
        print(f"  answers stopped coming (no new one for {args.stall:g} s)", flush=True)


def evaluate(phase: Phase, sandbox_db: Path, stored: dict[str, Stored]) -> None:
    """Latencies and stages of one phase."""
    hooks = phase.webhooks
    answers = answers_for(sandbox_db, hooks[0].customer, hooks[-1].customer)
    stages: dict[str, list[float]] = {name: [] for name in (*STAGES, "ack")}
    for w in hooks:
        got = answers.get(w.customer)
        if not got:
            continue
        at = got[0][0]
        phase.latencies_ms.append((at - w.sent) * 1000)
        stages["ack"].append((w.acked - w.sent) * 1000)
        row = stored.get(w.customer)
        if row is None:
            continue
        marks = (w.sent, row.received_at, row.processed_at, row.finished_at)
        marks += (row.submit_started_at, at)
        if any(m is None for m in marks):
            continue
        for name, start, end in zip(STAGES, marks, marks[1:], strict=False):
            assert start is not None and end is not None
            stages[name].append((end - start) * 1000)
    phase.latencies_ms.sort()
    phase.answered = len(phase.latencies_ms)
    phase.stages_ms = {name: sorted(values) for name, values in stages.items()}


def start_load(
    client: httpx.Client,
    phone_base: str,
    numbers: list[str],
    note: bytes | None,
    args: argparse.Namespace,
    pool: ThreadPoolExecutor,
) -> tuple[Load, list[Any]]:
    """Start the campaign, the index build and the voice notes; returns at once (the
    voice notes are posted by `pool`)."""
    load = Load()
    if numbers:
        answer = client.post(
            "/api/multi-sms/batches", json={"numbers": "\n".join(numbers), "body": BODY}
        )
        if answer.status_code != 201:
            raise SystemExit(f"POST /api/multi-sms/batches answered {answer.status_code}: "
                             f"{answer.text[:300]}")  # fmt: skip
        load.batch_id = int(answer.json()["id"])
    if args.articles:
        answer = client.post("/api/news/indices/build", json={"name": "news"})
        if answer.status_code != 202:
            raise SystemExit(f"POST /api/news/indices/build answered {answer.status_code}: "
                             f"{answer.text[:300]}")  # fmt: skip
        load.build_job = int(answer.json()["job_id"])
    futures = []
    if note is not None:
        for i in range(args.voice_notes):
            futures.append(pool.submit(post_note, phone_base, VOICE_NUMBER.format(i), note))
        load.notes_sent = args.voice_notes
    return load, futures


def post_note(phone_base: str, number: str, note: bytes) -> int:
    """The emulator's simulated phone sends a voice note; relaydesk's webhook answer."""
    answer = httpx.post(
        f"{phone_base}/sandbox/phone/messages",
        data={"from": number},
        files=[("media", ("note.ogg", note, "audio/ogg"))],
        auth=(BENCH_ACCOUNT_SID, BENCH_AUTH_TOKEN),
        timeout=60,
    )
    if answer.status_code != 201:
        return answer.status_code
    return int(answer.json().get("webhook_status") or 0)


def drain(
    client: httpx.Client,
    load: Load,
    app_db: Path | str,
    load_started: float,
    limit: float,
) -> None:
    """Wait (at most `limit` s) for the campaign, the build and the voice notes."""
    start = time.monotonic()
    while True:
        now = time.monotonic()
        if load.batch_id is None:
            load.campaign_status, campaign_done = "none", True
        else:
            batch = client.get(f"/api/multi-sms/batches/{load.batch_id}").json()
            counters = batch.get("counters", {})
            load.campaign_status = str(batch.get("status"))
            campaign_done = load.campaign_status in ("completed", "failed", "canceled") and (
                counters.get("pending", 0) == 0 and counters.get("sending", 0) == 0
            )
        if campaign_done and load.campaign_done_after is None:
            load.campaign_done_after = now - load_started
        found = job(client, load.build_job)
        load.build_status = str(found.get("status", "none"))
        build_done = load.build_status in ("done", "failed", "none")
        done, failed = voice_state(app_db)
        load.notes_transcribed, load.notes_failed = done, failed
        notes_done = done + failed >= load.notes_sent
        if notes_done and load.notes_done_after is None:
            load.notes_done_after = now - load_started
        if campaign_done and build_done and notes_done:
            load.drained_in = now - start
            break
        if now - start > limit:
            print(f"  not all finished within --drain {limit:g} s", flush=True)
            break
        time.sleep(1.0)
    found = job(client, load.build_job)
    if found.get("started_at") and found.get("finished_at"):
        started = datetime.fromisoformat(str(found["started_at"]))
        finished = datetime.fromisoformat(str(found["finished_at"]))
        load.build_seconds = (finished - started).total_seconds()
    load.build_result = found.get("result")
    if load.campaign_done_after is None and load.batch_id is not None:
        # Stop the dispatcher so that the server stops quickly.
        client.post(f"/api/multi-sms/batches/{load.batch_id}/cancel")


# --- one run -------------------------------------------------------------------------


def run(base_dir: Path, args: argparse.Namespace, fake: FakeOpenAI, backing: Backing) -> int:
    """Start everything, run both phases, drain, read, check, print."""
    data_dir = base_dir / "data"
    data_dir.mkdir(parents=True)
    rng = random.Random(args.seed)
    chars = write_articles(data_dir / "news", args.articles, args.article_chars, rng)
    print(f"  {args.articles} articles ({chars:,} characters) in {data_dir / 'news'}", flush=True)
    note = voice_note(args.voice_seconds) if args.voice_notes else None
    if args.voice_notes and note is None:
        print("  espeak-ng or ffmpeg missing: no voice notes", flush=True)
    elif note is not None:
        print(f"  voice note: {args.voice_seconds:g} s of speech, {len(note):,} bytes OGG/Opus")

    port = free_port()
    base = f"http://{HOST}:{port}"
    extra = {
        "SANDBOX_LATENCY_MS": str(args.latency_ms),
        "SANDBOX_SENDER_MPS": "1000",
        "SANDBOX_API_RPS": "1000",
        "CAMPAIGN_RATE_MPS": f"{args.campaign_rate:g}",
        "CAMPAIGN_CONCURRENCY": str(default_concurrency(args.campaign_rate, args.latency_ms)),
        "CAMPAIGN_MAX_RECIPIENTS": str(max(args.recipients, 250)),
        "LLM_ALLOW_PRIVATE_NETWORKS": "true",
    }
    if args.worker_threads:
        extra["WORKER_THREADS"] = str(args.worker_threads)
    if args.bulk_worker_threads:
        extra["BULK_WORKER_THREADS"] = str(args.bulk_worker_threads)
    emulator: Server | None = None
    phone_base = base
    if args.emulator == "separate":
        emulator = separate_emulator(data_dir, base, extra)
        phone_base = extra["TWILIO_API_BASE_URL"]
    print("  " + ", ".join(f"{k}={v}" for k, v in extra.items()), flush=True)
    env = server_env(data_dir, port, **extra, **backing.env())
    split = args.layout == "split"
    server = Server(data_dir, port, env, data_dir / "server.log", ["--no-worker"] if split else [])
    workers = []
    if split:
        nice = ["nice", "-n", str(args.bulk_nice)] if args.bulk_nice else []
        for queue, wrapper in (("live", []), ("bulk", nice)):
            log = data_dir / f"worker-{queue}.log"
            workers.append(
                Server(data_dir, 0, env, log, ["--queue", queue], "worker", wrapper=wrapper)
            )
    run_cli(["migrate"], env, data_dir)
    token = run_cli(["token", "create", "bench", "--role", "admin"], env, data_dir)
    token = token.strip().splitlines()[-1]
    sandbox_db = data_dir / "sandbox.db"
    app_db: Path | str = env.get("DATABASE_URL") or data_dir / "app.db"
    numbers = recipient_numbers(args.recipients)
    number_set = set(numbers)
    cpu = {
        "server": lambda: session_cpu(server.pid) + sum(session_cpu(w.pid) for w in workers),
        "emulator": lambda: session_cpu(emulator.pid) if emulator is not None else 0.0,
        "backing": backing.cpu,
    }
    idle = Phase("idle", build_webhooks(port, IDLE_FIRST, args.messages, "i"))
    loaded = Phase("under load", build_webhooks(port, LOAD_FIRST, args.messages, "l"))
    warm = build_webhooks(port, WARM_FIRST, args.warmup, "w")
    load = Load()
    note_statuses: list[int] = []
    load_started = 0.0
    try:
        if emulator is not None:
            emulator.start()
        server.start()
        for w in workers:
            w.start()
        configure(base, token, args.mode, fake.base_url, 0.0)
        headers = {"Authorization": f"Bearer {token}"}
        with (
            httpx.Client(base_url=base, headers=headers, timeout=300) as client,
            ThreadPoolExecutor(max_workers=4) as pool,
        ):
            if warm:
                send(base, warm, args.rate, False, args.concurrency)
                if not wait_for_answers(sandbox_db, warm, args.stall)[0]:
                    print(f"  warm-up answers missing\n{server.log_tail()}")
                time.sleep(0.5)

            print(f"\n== idle: {args.messages} webhooks at {args.rate:g}/s ==", flush=True)
            timed_phase(idle, base, sandbox_db, args, cpu)
            time.sleep(args.settle)

            print(
                f"\n== under load: {args.recipients:,}-recipient campaign at "
                f"{args.campaign_rate:g}/s, index build of {args.articles} articles, "
                f"{args.voice_notes if note else 0} voice notes; then {args.messages} "
                f"webhooks at {args.rate:g}/s ==",
                flush=True,
            )
            load_started = time.monotonic()
            load, futures = start_load(client, phone_base, numbers, note, args, pool)
            print(f"  load started in {time.monotonic() - load_started:.2f} s", flush=True)
            time.sleep(args.lead)
            timed_phase(loaded, base, sandbox_db, args, cpu)
            times = campaign_times(sandbox_db, number_set)
            load.campaign_at_phase_end = len(times)
            in_phase = [t for t in times if loaded.started <= t <= loaded.ended]
            load.campaign_in_phase = len(in_phase)
            span = loaded.ended - loaded.started
            load.campaign_rate_in_phase = len(in_phase) / span if span > 0 else 0.0
            load.build_at_phase_end = job_text(job(client, load.build_job))
            load.notes_at_phase_end = voice_state(app_db)[0]
            print(
                f"  during the phase: {load.campaign_in_phase:,} campaign messages accepted "
                f"({load.campaign_rate_in_phase:.1f}/s), {load.campaign_at_phase_end:,} since "
                f"the start; index build {load.build_at_phase_end}; "
                f"{load.notes_at_phase_end}/{load.notes_sent} voice notes transcribed",
                flush=True,
            )
            note_statuses = [f.result() for f in futures]
            load.notes_webhook_ok = sum(1 for s in note_statuses if s == 200)
            print(f"  waiting (at most {args.drain:g} s) for the background work", flush=True)
            drain(client, load, app_db, load_started, args.drain)
            time.sleep(args.settle)  # a duplicate answer would show up meanwhile
        stored = relaydesk_view(app_db)
        for phase in (idle, loaded):
            evaluate(phase, sandbox_db, stored)
        answers = answers_for(sandbox_db, "+48600000000", "+48600999999")
        voices = answers_for(sandbox_db, VOICE_NUMBER.format(0), VOICE_NUMBER.format(999))
    except (httpx.HTTPError, OSError):
        exited = server.proc.poll() if server.proc is not None else None
        print(f"\n  the server stopped answering (exit status {exited}); its log:")
        print(server.log_tail(60))
        raise
    finally:
        for w in workers:
            w.stop()
        server.stop()
        if emulator is not None:
            emulator.stop()
        if args.keep:
            print(f"  data kept in {data_dir}")

    checks = make_checks(args, idle, loaded, warm, load, answers, voices, note_statuses)
    report(args, idle, loaded, load)
    for ok, text in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    if not all(ok for ok, _ in checks):
        print(f"\n  server log (last lines):\n{server.log_tail()}")
        return 1
    return 0


def make_checks(
    args: argparse.Namespace,
    idle: Phase,
    loaded: Phase,
    warm: list[Webhook],
    load: Load,
    answers: dict[str, list[tuple[float, str]]],
    voices: dict[str, list[tuple[float, str]]],
    note_statuses: list[int],
) -> list[tuple[bool, str]]:
    """The checks of the run."""
    checks: list[tuple[bool, str]] = []
    hooks = [*warm, *idle.webhooks, *loaded.webhooks]
    statuses = Counter(w.status for w in hooks)
    checks.append(
        (set(statuses) == {200}, f"every webhook answered 200 (statuses {dict(statuses)})")
    )
    customers = [w.customer for w in hooks]
    per = Counter(len(answers.get(c, [])) for c in customers)
    ok = per == Counter({1: len(customers)})
    detail = ", ".join(f"{k} answer(s): {n}" for k, n in sorted(per.items()))
    checks.append((ok, f"exactly one answer per customer ({len(customers)} customers; {detail})"))
    if args.mode == "classic":
        wrong = sum(1 for c in customers for _, body in answers.get(c, []) if body != CLASSIC_TEXT)
        checks.append((wrong == 0, f"{wrong} answers without the static text"))
    if load.notes_sent:
        per_voice = Counter(len(voices.get(VOICE_NUMBER.format(i), [])) for i in range(
            load.notes_sent))  # fmt: skip
        detail = ", ".join(f"{k} answer(s): {n}" for k, n in sorted(per_voice.items()))
        checks.append(
            (
                load.notes_webhook_ok == load.notes_sent
                and per_voice == Counter({1: load.notes_sent}),
                f"voice notes: {load.notes_webhook_ok}/{load.notes_sent} webhooks answered 200, "
                f"one answer per sender ({detail})",
            )
        )
        checks.append(
            (
                load.notes_failed == 0,
                f"voice notes transcribed {load.notes_transcribed}/{load.notes_sent}, "
                f"{load.notes_failed} failed",
            )
        )
    if load.batch_id is not None:
        checks.append(
            (
                load.campaign_in_phase > 0,
                f"the campaign was sending during the timed load phase "
                f"({load.campaign_in_phase:,} messages accepted)",
            )
        )
    if load.build_job is not None:
        checks.append((load.build_status != "failed", f"index build {load.build_status}"))
    p99_idle = percentile(idle.latencies_ms, 99)
    p99_load = percentile(loaded.latencies_ms, 99)
    ratio = p99_load / p99_idle if p99_idle > 0 else float("inf")
    checks.append(
        (
            ratio <= args.max_ratio and idle.complete and loaded.complete,
            f"goal: p99 under load {p99_load:.0f} ms / idle {p99_idle:.0f} ms = {ratio:.2f} "
            f"(at most {args.max_ratio:g})",
        )
    )
    return checks


# --- output --------------------------------------------------------------------------


def _pcts(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"p50 {percentile(values, 50):7.1f}  p90 {percentile(values, 90):7.1f}  "
        f"p99 {percentile(values, 99):7.1f}  max {values[-1]:7.1f}"
    )


def report(args: argparse.Namespace, idle: Phase, loaded: Phase, load: Load) -> None:
    """Both phases, the background work, the summary."""
    for phase in (idle, loaded):
        print(f"\n== {phase.name} ==")
        n = len(phase.webhooks)
        print(
            f"  sent              {n} in {phase.send_seconds:.2f} s "
            f"({n / max(phase.send_seconds, 1e-9):.1f}/s offered); answered {phase.answered}"
        )
        print(f"  latency ms        {_pcts(phase.latencies_ms)}")
        for name in STAGES:
            print(f"    {name:<15} {_pcts(phase.stages_ms.get(name, []))}")
        print(f"    {'(webhook ack)':<15} {_pcts(phase.stages_ms.get('ack', []))}")
        wall = phase.wall or 1.0
        other = phase.other_cpu / wall
        warning = "  <- other work on this machine: figures are disturbed" if other > 0.15 else ""
        backing = f", PostgreSQL/Redis {phase.backing_cpu / wall:.2f}" if phase.backing_cpu else ""
        print(
            f"  CPU cores         relaydesk {phase.server_cpu / wall:.2f}, emulator "
            f"{phase.emulator_cpu / wall:.2f}{backing}, other processes {other:.2f}{warning}"
        )
    print("\n== background work ==")
    print(
        f"  campaign          {load.campaign_in_phase:,} accepted during the timed phase "
        f"({load.campaign_rate_in_phase:.1f}/s of {args.campaign_rate:g}); status "
        f"{load.campaign_status}"
        + (
            f", done {load.campaign_done_after:.1f} s after the load started"
            if load.campaign_done_after is not None
            else " (not done: canceled)"
        )
    )
    built = f"; took {load.build_seconds:.1f} s" if load.build_seconds is not None else ""
    result = load.build_result or {}
    vectors = f", {result.get('vectors')} vectors" if result.get("vectors") is not None else ""
    print(
        f"  index build       at the end of the phase: {load.build_at_phase_end}; "
        f"finally {load.build_status}{built}{vectors}"
    )
    notes = (
        f", all {load.notes_done_after:.1f} s after the load started"
        if load.notes_done_after is not None
        else ""
    )
    print(
        f"  voice notes       {load.notes_at_phase_end}/{load.notes_sent} transcribed at the "
        f"end of the phase; finally {load.notes_transcribed} ({load.notes_failed} failed){notes}"
    )
    print("\n== summary ==")
    print(f"  {'phase':<12}{'answered':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for phase in (idle, loaded):
        lat = phase.latencies_ms
        print(
            f"  {phase.name:<12}{phase.answered:>9}{percentile(lat, 50):>9.1f}"
            f"{percentile(lat, 90):>9.1f}{percentile(lat, 99):>9.1f}"
            f"{(lat[-1] if lat else float('nan')):>9.1f}"
        )
    p99_idle, p99_load = percentile(idle.latencies_ms, 99), percentile(loaded.latencies_ms, 99)
    ratio = p99_load / p99_idle if p99_idle > 0 else float("inf")
    print(f"  p99 under load / p99 idle = {ratio:.2f} (goal: at most {args.max_ratio:g})")


def queues_text(args: argparse.Namespace) -> str:
    """The worker threads of the code under test."""
    fields = Settings.model_fields
    live = args.worker_threads or fields["worker_threads"].default
    if "bulk_worker_threads" not in fields:
        return f"one queue, WORKER_THREADS={live} (before the live/bulk split)"
    bulk = args.bulk_worker_threads or fields["bulk_worker_threads"].default
    return f"queues: live WORKER_THREADS={live}, bulk BULK_WORKER_THREADS={bulk}"


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(
        description="Automatic-answer latency idle and while a campaign, an index build and "
        "voice notes run."
    )
    parser.add_argument("--messages", type=int, default=200, help="timed webhooks per phase")
    parser.add_argument("--rate", type=float, default=10.0, help="offered webhooks per second")
    parser.add_argument("--recipients", type=int, default=10_000, help="campaign recipients")
    parser.add_argument(
        "--campaign-rate", type=float, default=200.0, help="CAMPAIGN_RATE_MPS (default 200)"
    )
    parser.add_argument("--articles", type=int, default=300, help="articles to index (0: none)")
    parser.add_argument(
        "--article-chars", type=int, default=2000, help="characters per article (about)"
    )
    parser.add_argument("--voice-notes", type=int, default=20, help="voice notes (0: none)")
    parser.add_argument("--voice-seconds", type=float, default=5.0, help="length of each note")
    parser.add_argument("--mode", choices=("classic", "ai"), default="classic")
    parser.add_argument(
        "--layout",
        choices=("serve", "split"),
        default="serve",
        help="serve: one default `relaydesk serve` (default); split: serve --no-worker + "
        "worker --queue live + worker --queue bulk",
    )
    parser.add_argument(
        "--bulk-nice", type=int, default=10, help="nice value of the bulk worker (split)"
    )
    parser.add_argument(
        "--emulator",
        choices=("separate", "embedded"),
        default="separate",
        help="the emulator as its own process, like Twilio (default), or inside the server",
    )
    parser.add_argument(
        "--latency-ms", type=int, default=100, help="SANDBOX_LATENCY_MS (default 100)"
    )
    parser.add_argument("--worker-threads", type=int, default=None, help="WORKER_THREADS")
    parser.add_argument("--bulk-worker-threads", type=int, default=None, help="BULK_WORKER_THREADS")
    parser.add_argument("--warmup", type=int, default=10, help="untimed webhooks first")
    parser.add_argument("--concurrency", type=int, default=32, help="connections (at most)")
    parser.add_argument(
        "--lead", type=float, default=2.0, help="seconds between starting the load and timing"
    )
    parser.add_argument(
        "--drain", type=float, default=180.0, help="wait at most this long for the load to end"
    )
    parser.add_argument("--stall", type=float, default=60.0, help="give up on missing answers")
    parser.add_argument("--settle", type=float, default=2.0, help="pause between the phases")
    parser.add_argument("--max-ratio", type=float, default=2.0, help="the goal (default 2)")
    parser.add_argument(
        "--postgresql",
        action="store_true",
        help="relaydesk on a throwaway PostgreSQL cluster (tests/pgserver.py) instead of SQLite",
    )
    parser.add_argument(
        "--redis", action="store_true", help="a throwaway redis-server as the job queue"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the articles")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.rate <= 0 or args.recipients < 0 or args.warmup < 0:
        parser.error("--messages and --rate must be positive, --recipients and --warmup >= 0")
    if args.messages > 99_999 or args.warmup > 99_999 or args.voice_notes > 999:
        parser.error("at most 99,999 messages and warm-up webhooks, 999 voice notes")
    if args.recipients > 12 * 90_000:
        parser.error("at most 1,080,000 recipients (their numbers must not meet the customers')")
    if args.articles < 0 or args.voice_notes < 0:
        parser.error("--articles and --voice-notes must be >= 0")
    if args.layout == "split" and "bulk_worker_threads" not in Settings.model_fields:
        parser.error("--layout split needs a revision with the live and bulk queues")

    exit_on_sigterm()
    print(environment())
    print(
        f"live under load: {args.messages} webhooks per phase at {args.rate:g}/s ({args.mode} "
        f"auto-reply, debounce 0, distinct customers); load: {args.recipients:,} recipients at "
        f"{args.campaign_rate:g}/s, {args.articles} articles indexed, {args.voice_notes} voice "
        f"notes; emulator {args.emulator}; layout {args.layout}; {queues_text(args)}"
    )
    base_dir = Path(tempfile.mkdtemp(prefix="relaydesk-live-load-"))
    backing = Backing(args.postgresql, args.redis)
    fake = FakeOpenAI()
    fake.start()
    try:
        backing.start()
        print(f"  {backing.describe()}")
        status = run(base_dir, args, fake, backing)
    finally:
        fake.stop()
        backing.stop()
        if not args.keep:
            shutil.rmtree(base_dir, ignore_errors=True)
    print("\nall checks PASS" if status == 0 else "\nFAIL")
    return status


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
