"""Benchmark: many messages due at once (scheduled sends, reminders) while customers write.

What it measures
    On one default `relaydesk serve` (SQLite, or --postgresql --redis) with the emulator
    as its own process replying to each Messages.create after --twilio-ms (default 150,
    about what Twilio takes), --due messages (default 500) are scheduled through
    POST /api/send-message for the same moment T0. Each comes due as its own queued job
    (`messaging.deliver`), as a scheduled send, a reminder or a retry does. From T0,
    --customers customers (default 50) write at --rate per second (default 10) with the
    classic auto-reply on (debounce 0), one message each.

    Printed: how long the due messages took to reach Twilio (T0 -> the last one's
    acceptance at the emulator, its own `date_created`, same clock) and at what rate;
    the customers' latency from their webhook to their answer at Twilio (p50/p99/max);
    the server's CPU per message.

Checks (exit status 1 if any fails)
    Every scheduling request answered 201 and every webhook 200; each due message and
    each answer reached the emulator exactly once; relaydesk stored each of them with
    the SID the emulator gave it.

Run (about a minute):

    .venv/bin/python bench/due_sends.py
    .venv/bin/python bench/due_sends.py --due 2000 --twilio-ms 500
    .venv/bin/python bench/due_sends.py --postgresql --redis

(PYTHONPATH=/tmp/rev/src selects another relaydesk revision, as in webhook_ingest.py.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from automation_latency import (
    CLASSIC_TEXT,
    build_webhooks,
    connect_ro,
    emulator_answers,
    emulator_count,
    send,
    wait_for_answers,
)
from benchlib import (
    HOST,
    Backing,
    PgConnection,
    Server,
    environment,
    exit_on_sigterm,
    free_port,
    percentile,
    run_cli,
    separate_emulator,
    server_env,
    session_cpu,
)


def schedule(base: str, token: str, numbers: list[str], at: datetime) -> list[int]:
    """One scheduled message per number, all due `at`; the HTTP status of each request."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:

        def one(number: str) -> int:
            answer = client.post(
                "/api/send-message",
                json={"to": number, "body": f"Reminder for {number}", "send_at": at.isoformat()},
            )
            return answer.status_code

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, numbers))


def stored_sids(app_db: Path | str) -> dict[str, list[str]]:
    """The SIDs relaydesk stored for its outbound messages, per recipient (from the
    SQLite file, or from PostgreSQL when `app_db` is a URL)."""
    conn: Any = PgConnection(app_db) if isinstance(app_db, str) else connect_ro(app_db)
    try:
        rows = conn.execute(
            "SELECT to_addr, sid FROM messages WHERE direction = 'outbound'"
        ).fetchall()
    finally:
        conn.close()
    out: dict[str, list[str]] = {}
    for to_addr, sid in rows:
        out.setdefault(to_addr, []).append(sid)
    return out


def run(args: argparse.Namespace, backing: Backing) -> bool:
    base_dir = Path(tempfile.mkdtemp(prefix="relaydesk-due-"))
    data_dir = base_dir / "data"
    data_dir.mkdir()
    port = free_port()
    base = f"http://{HOST}:{port}"
    extra = {"SANDBOX_LATENCY_MS": str(args.twilio_ms)}
    emulator = separate_emulator(data_dir, base, extra)
    env = server_env(data_dir, port, **extra, **backing.env())
    server = Server(data_dir, port, env, data_dir / "server.log")
    run_cli(["migrate"], env, data_dir)
    token = run_cli(["token", "create", "bench", "--role", "admin"], env, data_dir)
    token = token.strip().splitlines()[-1]
    sandbox_db = data_dir / "sandbox.db"
    app_db: Path | str = env.get("DATABASE_URL") or data_dir / "app.db"
    due_numbers = [f"+48700{i:06d}" for i in range(args.due)]
    webhooks = build_webhooks(port, 0, args.customers, "d")
    checks: list[tuple[bool, str]] = []
    emulator.start()
    try:
        server.start()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            rules = {"debounce_seconds": 0, "loop_guard_per_hour": 1000}
            for path, body in (
                ("/api/automation/rules", rules),
                ("/api/auto-reply", {"enabled": True, "message": CLASSIC_TEXT}),
            ):
                if client.put(path, json=body).status_code != 200:
                    raise SystemExit(f"PUT {path} failed")
        lead = max(5.0, args.due / 40)
        t0 = time.time() + lead
        codes = schedule(base, token, due_numbers, datetime.fromtimestamp(t0, UTC))
        if time.time() > t0 - 1:
            raise SystemExit("scheduling took longer than its lead; the figures would mix")
        checks.append((codes == [201] * args.due, f"scheduling answered {sorted(set(codes))}"))
        time.sleep(max(0.0, t0 - time.time()))
        cpu0 = session_cpu(server.pid)
        send(base, webhooks, args.rate, False, 8)
        expected = args.due + args.customers
        if not wait_for_answers(sandbox_db, expected, args.stall):
            print(f"  messages stopped coming ({emulator_count(sandbox_db)} of {expected})")
        wall = time.time() - t0
        cpu = session_cpu(server.pid) - cpu0
        time.sleep(2.0)  # a duplicate would show up meanwhile
        sent = emulator_answers(sandbox_db, "sid")
        stored = stored_sids(app_db)
    finally:
        server.stop()
        emulator.stop()

    due_times = [sent[n][0][0] for n in due_numbers if n in sent]
    drain = max(due_times) - t0 if due_times else float("nan")
    answers_ms = sorted(
        (sent[w.customer][0][0] - w.sent) * 1000 for w in webhooks if w.customer in sent
    )
    checks.append((all(w.status == 200 for w in webhooks), "every customer's webhook answered 200"))
    everyone = [*due_numbers, *(w.customer for w in webhooks)]
    once = [n for n in everyone if len(sent.get(n, [])) == 1]
    checks.append(
        (len(once) == len(everyone), f"exactly once at Twilio: {len(once)}/{len(everyone)}")
    )
    same = [n for n in once if stored.get(n) == [sent[n][0][1]]]
    checks.append(
        (len(same) == len(everyone), f"stored with Twilio's SID: {len(same)}/{len(everyone)}")
    )
    print(
        f"  due messages      {len(due_times)} at Twilio {drain:.2f} s after T0 "
        f"({len(due_times) / drain:.1f}/s; Twilio replies in {args.twilio_ms} ms)"
    )
    print(
        f"  customers' answers p50 {percentile(answers_ms, 50):.0f}  "
        f"p99 {percentile(answers_ms, 99):.0f}  max {answers_ms[-1] if answers_ms else 0:.0f} ms"
        f"  ({len(answers_ms)} customers at {args.rate:g}/s from T0)"
    )
    print(f"  server CPU        {cpu / wall:.2f} cores, {cpu / expected * 1000:.1f} ms per message")
    for ok, what in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {what}")
    return all(ok for ok, _ in checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--due", type=int, default=500, help="messages due at once")
    parser.add_argument("--customers", type=int, default=50, help="customers writing from T0")
    parser.add_argument("--rate", type=float, default=10.0, help="customers per second")
    parser.add_argument("--twilio-ms", type=int, default=150, help="Twilio's reply time")
    parser.add_argument("--stall", type=float, default=60.0, help="give up after no progress")
    parser.add_argument("--postgresql", action="store_true", help="a throwaway PostgreSQL")
    parser.add_argument("--redis", action="store_true", help="a throwaway redis-server")
    args = parser.parse_args(argv)
    if args.due < 1 or args.customers < 1 or args.rate <= 0 or args.twilio_ms < 0:
        parser.error("--due, --customers and --rate must be positive")
    exit_on_sigterm()
    print(environment())
    backing = Backing(args.postgresql, args.redis)
    backing.start()
    print(f"  {backing.describe()}; one serve; emulator its own process")
    try:
        ok = run(args, backing)
    finally:
        backing.stop()
    print("\nall checks PASS" if ok else "\nSOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
