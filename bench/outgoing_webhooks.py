"""Benchmark: outgoing webhooks delivered to a loopback receiver while ingest runs.

What it measures
    1. Delay: with one endpoint subscribed to message.received, signed Twilio inbound
       webhooks are POSTed at a paced --rate (default 1,000/s) for --seconds; each stored
       message becomes an event that the worker signs and POSTs to a receiver on
       loopback. Reported: events delivered per second while ingest runs, and the delivery
       delay (the event's `timestamp`, set in the ingest transaction, to its arrival at
       the receiver) p50/p90/p99/max, plus the inbound webhooks' own latency.
    2. Throughput: the receiver holds its answers while --backlog webhooks are
       ingested, then answers; the time until it has them all gives the delivery rate
       on its own (events/s), without ingest competing.

How
    It starts `relaydesk serve` (in-process worker, SQLite, or --postgresql) like
    bench/webhook_ingest.py and reuses its request builder and sender; the receiver is
    tests/fakes/webhook_receiver.py (a threaded http.server, keep-alive), which answers
    200 at once. The bench and the server share the machine's cores.

Run:
    .venv/bin/python bench/outgoing_webhooks.py
    .venv/bin/python bench/outgoing_webhooks.py --rate 1000 --seconds 10 --backlog 5000
    .venv/bin/python bench/outgoing_webhooks.py --postgresql
    .venv/bin/python bench/outgoing_webhooks.py --worker-process   # sending in `relaydesk worker`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from benchlib import (
    HOST,
    Backing,
    Server,
    environment,
    exit_on_sigterm,
    free_port,
    machine_busy_cpu,
    percentile,
    read_answer,
    run_cli,
    server_env,
    session_cpu,
)
from webhook_ingest import Webhook, build_webhook, customer_numbers, run_async

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' loopback fakes
from tests.fakes.webhook_receiver import WebhookReceiver

DRAIN_TIMEOUT = 300.0


async def send_paced(port: int, requests: list[Webhook], rate: float, concurrency: int) -> Any:
    """Send request i no earlier than i / rate seconds after the start."""
    n = len(requests)
    latencies = [0.0] * n
    statuses = [0] * n
    cursor = 0
    start = time.perf_counter()

    async def connection() -> None:
        nonlocal cursor
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while cursor < n:
                i = cursor
                cursor += 1
                wait = start + i / rate - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                began = time.perf_counter()
                writer.write(requests[i].data)
                status, close = await read_answer(reader)
                latencies[i] = time.perf_counter() - began
                statuses[i] = status
                if close:
                    writer.close()
                    reader, writer = await asyncio.open_connection(HOST, port)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(min(concurrency, n))))
    return latencies, statuses, time.perf_counter() - start


def admin_client(env: dict[str, str], data_dir: Path, port: int) -> httpx.Client:
    token = run_cli(["token", "create", "bench", "--role", "admin"], env, data_dir)
    return httpx.Client(
        base_url=f"http://{HOST}:{port}",
        headers={"Authorization": f"Bearer {token.strip().splitlines()[-1]}"},
        timeout=30,
    )


def wait_received(receiver: WebhookReceiver, count: int) -> float | None:
    """Seconds until the receiver has `count` events, or None on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < DRAIN_TIMEOUT:
        if receiver.count >= count:
            return time.monotonic() - start
        time.sleep(0.02)
    return None


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="inbound webhooks per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long ingest runs")
    parser.add_argument("--backlog", type=int, default=5000, help="events for the drain phase")
    parser.add_argument("--concurrency", type=int, default=32, help="inbound connections")
    parser.add_argument("--postgresql", action="store_true", help="a throwaway PostgreSQL")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--worker-process",
        action="store_true",
        help="serve --no-worker and a separate `relaydesk worker` sends the deliveries",
    )
    args = parser.parse_args(argv)
    exit_on_sigterm()
    base = Path(tempfile.mkdtemp(prefix="relaydesk-bench-hooks-"))
    data_dir = base / "data"
    data_dir.mkdir()
    rng = random.Random(args.seed)
    port = free_port()
    print(
        f"outgoing webhooks: ingest at {args.rate:,.0f}/s for {args.seconds:g} s, then a "
        f"{args.backlog:,}-event backlog; data in {base}"
    )
    print(environment())
    backing = Backing(args.postgresql, False)
    failed = False
    try:
        backing.start()
        print(backing.describe())
        env = server_env(data_dir, port, WEBHOOKS_ALLOW_PRIVATE_NETWORKS="true", **backing.env())
        if "DATABASE_URL" in env:
            run_cli(["migrate"], env, data_dir)
        customers = customer_numbers(0)
        count = int(args.rate * args.seconds)
        paced = [build_webhook(port, rng, customers) for _ in range(count)]
        backlog = [build_webhook(port, rng, customers) for _ in range(args.backlog)]
        warm = [build_webhook(port, rng, customers) for _ in range(300)]
        with WebhookReceiver() as receiver:
            # --worker-process: the web process only stores; a `relaydesk worker` sends.
            extra = ["--no-worker"] if args.worker_process else []
            server = Server(data_dir, port, env, data_dir / "server.log", extra_args=extra)
            worker = (
                Server(data_dir, 0, env, data_dir / "worker.log", command="worker")
                if args.worker_process
                else None
            )
            try:
                server.start()
                if worker is not None:
                    worker.start()
                with admin_client(env, data_dir, port) as api:
                    made = api.post(
                        "/api/webhooks",
                        json={"url": receiver.url, "events": ["message.received"]},
                    )
                    assert made.status_code == 201, made.text
                    endpoint = made.json()["id"]

                    # Warm-up (connections, caches), excluded.
                    run_async(lambda: send_paced(port, warm, args.rate, args.concurrency))
                    if wait_received(receiver, len(warm)) is None:
                        print("FAIL: the warm-up events did not all arrive")
                        return 1
                    receiver.received.clear()
                    receiver.count = 0

                    # 1. Delay while ingest runs at the rate.
                    worker0 = session_cpu(worker.pid) if worker is not None else 0.0
                    cpu0, client0, machine0 = (
                        session_cpu(server.pid),
                        time.process_time(),
                        machine_busy_cpu(),
                    )
                    latencies, statuses, elapsed = run_async(
                        lambda: send_paced(port, paced, args.rate, args.concurrency)
                    )
                    ingest_end = time.time()
                    server_cpu = session_cpu(server.pid) - cpu0
                    bench_cpu = time.process_time() - client0
                    worker_cpu = session_cpu(worker.pid) - worker0 if worker is not None else 0.0
                    busy = machine_busy_cpu() - machine0
                    other = max(0.0, busy - server_cpu - bench_cpu - worker_cpu)
                    during = sum(1 for r in receiver.events() if r.at <= ingest_end)
                    drained = wait_received(receiver, count)
                    got = receiver.events()
                    delays = sorted((r.at - _created(r)) * 1000 for r in got)
                    ok = sum(1 for s in statuses if s == 200)
                    lat = sorted(x * 1000 for x in latencies)
                    print("\n== 1. delivery delay while ingest runs ==")
                    print(
                        f"  inbound webhooks   {count:,} in {elapsed:.2f} s = "
                        f"{count / elapsed:,.0f}/s ({ok:,} answered 200)"
                    )
                    print(
                        f"  inbound latency ms p50 {percentile(lat, 50):.1f}  "
                        f"p99 {percentile(lat, 99):.1f}  max {lat[-1]:.1f}"
                    )
                    print(
                        f"  events delivered   {len(got):,} (of {count:,}); "
                        f"{during:,} during ingest = {during / elapsed:,.0f}/s"
                    )
                    if drained is not None:
                        print(f"  the rest arrived   {drained:.2f} s after ingest stopped")
                    print(
                        f"  delivery delay ms  p50 {percentile(delays, 50):.0f}  "
                        f"p90 {percentile(delays, 90):.0f}  p99 {percentile(delays, 99):.0f}  "
                        f"max {delays[-1]:.0f}"
                    )
                    print(
                        f"  {'web process' if worker else 'server':<19}"
                        f"{server_cpu / count * 1000:.2f} ms CPU per inbound webhook = "
                        f"{server_cpu / elapsed:.2f} cores"
                    )
                    if worker is not None:
                        print(
                            f"  worker process     {worker_cpu / count * 1000:.2f} ms CPU per "
                            f"event = {worker_cpu / elapsed:.2f} cores"
                        )
                    print(
                        f"  bench CPU          {bench_cpu / elapsed:.2f} cores (client, receiver)"
                    )
                    warn = "  <- other work on this machine" if other / elapsed > 0.15 else ""
                    print(f"  other processes    {other / elapsed:.2f} cores{warn}")
                    if len(got) != count or ok != count:
                        failed = True
                        print("  FAIL: not every webhook was stored and delivered once")
                    ids = {r.headers["webhook-id"] for r in got}
                    print(
                        f"  {'PASS' if len(ids) == len(got) else 'FAIL'}  "
                        f"{len(ids):,} distinct webhook-ids"
                    )

                    # 2. Throughput of delivery alone: the receiver holds its answers
                    # while a backlog is ingested, then answers everything.
                    receiver.received.clear()
                    receiver.count = 0
                    hold = threading.Event()
                    receiver.hold = hold
                    run_async(lambda: send_paced(port, backlog, 2000.0, args.concurrency))
                    waiting = api.get(f"/api/webhooks/{endpoint}").json()["pending"]
                    started = time.monotonic()
                    hold.set()
                    receiver.hold = None
                    took = wait_received(receiver, args.backlog)
                    print("\n== 2. delivery throughput (a backlog, no ingest) ==")
                    print(f"  backlog            {waiting:,} deliveries waiting")
                    if took is None:
                        failed = True
                        print(f"  FAIL: {receiver.count:,} arrived within {DRAIN_TIMEOUT:.0f} s")
                    else:
                        took = time.monotonic() - started
                        print(
                            f"  delivered          {receiver.count:,} in {took:.2f} s = "
                            f"{receiver.count / took:,.0f} events/s"
                        )
                        distinct = len({r.headers["webhook-id"] for r in receiver.events()})
                        again = receiver.count - distinct
                        # A held request older than the sender's timeout is sent again
                        # (at least once): it arrives twice, with the same webhook-id.
                        print(
                            f"  {'PASS' if distinct == args.backlog else 'FAIL'}  "
                            f"{distinct:,} distinct webhook-ids"
                            + (
                                f" ({again:,} sent again after the sender's timeout)"
                                if again
                                else ""
                            )
                        )
                        failed = failed or distinct != args.backlog
            finally:
                server.stop()
                if worker is not None:
                    worker.stop()
    finally:
        backing.stop()
        shutil.rmtree(base, ignore_errors=True)
    print("\nFAIL" if failed else "\nall checks PASS")
    return 1 if failed else 0


def _created(received: Any) -> float:
    from datetime import datetime

    stamp = json.loads(received.body)["timestamp"]
    return datetime.fromisoformat(stamp).timestamp()


if __name__ == "__main__":
    sys.exit(main())
