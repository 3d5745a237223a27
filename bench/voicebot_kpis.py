"""Benchmark: the voice-bot KPIs of a month holding 100,000 conversations.

What it measures
    Latency (p50/p95/max over --requests sequential requests after a warm-up, one
    keep-alive connection) of
      - GET /api/voicebot/kpis?month=YYYY-MM                  every KPI of the month
      - GET /api/voicebot/kpis?month=YYYY-MM&agent_id=<one>   one agent's KPIs
      - GET /api/voicebot/conversations?month=YYYY-MM         the table's first page
    through `relaydesk serve` on SQLite. Target: p95 < 200 ms for the KPIs.
    When bench/voicebot_sync.py exists (and without --no-sync), it also prints the sync
    throughput against the fake ElevenLabs server with 50 ms latency per request.

How
    Migrates a fresh DATA_DIR (`relaydesk migrate`), bulk-inserts --conversations calls
    spread over one month and three agents (seeded random mix of outcomes, directions,
    durations, costs, ratings, flags) with three evaluation criteria each, runs the
    sampled ANALYZE that the app runs hourly, starts the server, creates a viewer token
    with `relaydesk token create` and times the requests with httpx.

Run (about a minute):

    .venv/bin/python bench/voicebot_kpis.py
    .venv/bin/python bench/voicebot_kpis.py --conversations 20000 --requests 20 --no-sync
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from benchlib import (
    HOST,
    Server,
    environment,
    exit_on_sigterm,
    free_port,
    percentile,
    process_cpu,
    run_cli,
    server_env,
)
from relaydesk.maintenance import ANALYSIS_LIMIT

TARGET_P95_MS = 200.0
MONTH = "2025-03"
AGENTS = ("agent_recepcja", "agent_sprzedaz", "agent_serwis")
CRITERIA = ("goal_reached", "greeting", "politeness")
CHUNK = 20_000
OUTCOMES = ("success",) * 6 + ("failure",) * 3 + ("unknown",)


# Each call keeps its details as the sync stores them: a transcript of a few KB.
DETAILS = json.dumps(
    {
        "transcript": [
            {
                "role": "agent" if i % 2 else "user",
                "message": "Dzień dobry, chciałbym umówić wizytę na przyszły tydzień. " * 2,
                "time_in_call_secs": i * 7,
            }
            for i in range(16)
        ],
        "metadata": {"termination_reason": "Call ended by remote party"},
    },
    ensure_ascii=False,
)


def _stamp(moment: datetime) -> str:
    # How SQLAlchemy stores UTC datetimes in SQLite.
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def seed(db_path: Path, conversations: int, seed_value: int = 8) -> float:
    """Bulk-insert the month's conversations and evaluations; the seconds it took."""
    rng = random.Random(seed_value)
    start = datetime(2025, 3, 1, tzinfo=UTC)
    seconds = 31 * 86400
    now = _stamp(datetime.now(UTC))
    # Calls in time order, as a sync stores them.
    moments = sorted(rng.randrange(seconds) for _ in range(conversations))
    started = time.perf_counter()
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conv_rows = []
        eval_rows = []
        for n, offset in enumerate(moments, 1):
            outcome = rng.choice(OUTCOMES)
            failed = rng.random() < 0.03
            duration = int(rng.expovariate(1 / 110))
            agent = rng.choice(AGENTS)
            start_iso = _stamp(start + timedelta(seconds=offset))
            conv_rows.append(
                (
                    n,
                    f"conv_{n:08d}",
                    agent,
                    "Voicebot",
                    "failed" if failed else "done",
                    start_iso,
                    start_iso[:10],
                    duration,
                    rng.randrange(2, 30),
                    rng.randrange(1, 15),
                    rng.choice(("inbound", "inbound", "outbound")),
                    outcome,
                    rng.choice(("end_call tool was called.", "Call ended by remote party")),
                    float(rng.randrange(50, 3000)),
                    float(rng.randint(1, 5)) if rng.random() < 0.3 else None,
                    rng.randrange(0, 2),
                    rng.randrange(0, 2),
                    int(failed or rng.random() < 0.01),
                    int(rng.random() < 0.1),
                    int(outcome != "success" and duration < 30),
                    f"+48{rng.randrange(500_000_000, 899_999_999)}",
                    "+48221234567",
                    "phone_call",
                    "Rozmowa z klientem",
                    "Klient zapytał o termin wizyty i otrzymał odpowiedź.",
                    DETAILS,
                    now,
                    now,
                )
            )
            for criterion in CRITERIA:
                eval_rows.append((n, start_iso, agent, criterion, rng.choice(OUTCOMES)))
        conv_sql = (
            "INSERT INTO voicebot_conversations (id, conversation_id, agent_id, agent_name, "
            "status, start_time, day, duration_secs, message_count, agent_messages, direction, "
            "call_successful, termination_reason, cost, rating, likes, dislikes, has_error, "
            "transferred, dropout, customer_number, agent_number, phone_source, title, "
            "summary, details, created_at, updated_at) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        eval_sql = (
            "INSERT INTO voicebot_evaluations (conversation_pk, start_time, agent_id, criterion, "
            "result) VALUES (?, ?, ?, ?, ?)"
        )
        for sql, rows in ((conv_sql, conv_rows), (eval_sql, eval_rows)):
            for i in range(0, len(rows), CHUNK):
                conn.execute("BEGIN")
                conn.executemany(sql, rows[i : i + CHUNK])
                conn.execute("COMMIT")
        conn.execute(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.perf_counter() - started


def measure(client: httpx.Client, path: str, requests: int, warmup: int, pid: int) -> dict:
    """Warm up, then time sequential requests; latencies (sorted) and server CPU per request."""
    for _ in range(warmup):
        client.get(path).raise_for_status()
    latencies = []
    cpu0 = process_cpu(pid)
    for _ in range(requests):
        began = time.perf_counter()
        answer = client.get(path)
        latencies.append((time.perf_counter() - began) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"{path} answered {answer.status_code}: {answer.text[:300]}")
    return {
        "latencies": sorted(latencies),
        "cpu_ms": (process_cpu(pid) - cpu0) / requests * 1000,
        "body": answer.json(),
    }


def run(args: argparse.Namespace, data_dir: Path) -> bool:
    """Seed, serve, measure; True when the KPI target was met."""
    port = free_port()
    env = server_env(data_dir, port)
    print(f"migrating and seeding {args.conversations:,} conversations in {MONTH}")
    run_cli(["migrate"], env, data_dir)
    took = seed(data_dir / "app.db", args.conversations)
    print(
        f"  seeded {args.conversations:,} conversations, {args.conversations * 3:,} "
        f"evaluations in {took:.1f} s"
    )
    server = Server(data_dir, port, env, data_dir / "server.log")
    ok = True
    try:
        server.start()
        token = run_cli(["token", "create", "bench", "--role", "viewer"], env, data_dir)
        token = token.strip().splitlines()[-1]
        with httpx.Client(
            base_url=f"http://{HOST}:{port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        ) as client:
            cases = [
                ("kpis, month", f"/api/voicebot/kpis?month={MONTH}", True),
                (
                    f"kpis, month + agent {AGENTS[0]}",
                    f"/api/voicebot/kpis?month={MONTH}&agent_id={AGENTS[0]}",
                    True,
                ),
                (
                    "conversations, first page",
                    f"/api/voicebot/conversations?month={MONTH}&per_page=50",
                    False,
                ),
            ]
            print(
                f"\n== voice-bot KPIs: {args.conversations:,} conversations in one month; "
                f"{args.requests} sequential requests each =="
            )
            print(
                f"  {'endpoint':<40}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
                f"{'srv CPU ms':>12}  notes"
            )
            for label, path, in_target in cases:
                m = measure(client, path, args.requests, args.warmup, server.pid)
                lat = m["latencies"]
                p95 = percentile(lat, 95)
                verdict = "not in target"
                if in_target:
                    met = p95 < TARGET_P95_MS
                    ok &= met
                    verdict = "target met" if met else "TARGET NOT MET"
                body = m["body"]
                note = f"total={body['total']:,}" if "total" in body else ""
                print(
                    f"  {label:<40}{percentile(lat, 50):>9.1f}{p95:>9.1f}{lat[-1]:>9.1f}"
                    f"{m['cpu_ms']:>12.1f}  {verdict}; {note}"
                )
            print(
                f"  target p95 < {TARGET_P95_MS:.0f} ms for the KPIs: {'met' if ok else 'NOT met'}"
            )
    finally:
        server.stop()
    return ok


def sync_throughput(conversations: int) -> None:
    """bench/voicebot_sync.py's measure_sync at 50 ms latency, when that file exists."""
    path = Path(__file__).with_name("voicebot_sync.py")
    if not path.exists():
        print("\n(sync throughput: bench/voicebot_sync.py is not there; skipped)")
        return
    spec = importlib.util.spec_from_file_location("voicebot_sync", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    print(f"\n== voice-bot sync: {conversations:,} conversations, 50 ms latency ==")
    result = module.measure_sync(conversations, 50)
    if result is not None:
        print(f"  {result}")


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description="Voice-bot KPI latency on a big month.")
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=50, help="timed requests per endpoint")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests per endpoint")
    parser.add_argument("--data-dir", type=Path, default=None, help="an empty DATA_DIR to use")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--no-sync", action="store_true", help="skip the sync throughput")
    parser.add_argument("--sync-conversations", type=int, default=500, help="conversations to sync")
    args = parser.parse_args(argv)
    if args.conversations < 1 or args.requests < 1:
        parser.error("--conversations and --requests must be positive")
    exit_on_sigterm()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="relaydesk-voicebot-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    if any(data_dir.iterdir()):
        parser.error(f"{data_dir} is not empty")
    print(environment())
    try:
        ok = run(args, data_dir)
        if not args.no_sync:
            sync_throughput(args.sync_conversations)
    finally:
        if args.keep:
            print(f"  data kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; server stopped", file=sys.stderr)
        sys.exit(130)
