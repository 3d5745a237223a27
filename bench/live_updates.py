"""Benchmark: how soon an open panel page learns about a new message.

What it measures
    The delay from the moment relaydesk has answered an inbound webhook (the message is
    stored) to the moment an open panel page receives its `changed` server-sent event
    on GET /live, over --messages webhooks sent at random moments (so they fall anywhere
    in the server's one-second change check). The page then reloads its fragment; that
    request is measured by inbox_queries.py. Target (issue 3): live updates no slower
    than polling every 3 s, i.e. p95 below 3,000 ms.

    It also reports what open pages cost while nothing happens: the server's CPU time
    per second with --listeners streams open (one shared check per process, not one
    per page).

How
    Migrates a fresh DATA_DIR, creates a viewer with `relaydesk user create`, starts
    `relaydesk serve`, signs in like a browser (login form token, session cookie), opens
    --listeners event streams, and posts signed inbound webhooks one at a time.

Run (about a minute):

    .venv/bin/python bench/live_updates.py
    .venv/bin/python bench/live_updates.py --messages 50 --listeners 50
"""

from __future__ import annotations

import argparse
import queue
import random
import re
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path

import httpx

from benchlib import (
    BENCH_AUTH_TOKEN,
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
from relaydesk.channels.twilio.signature import sign

TARGET_P95_MS = 3000.0
EMAIL, PASSWORD = "bench@example.com", "bench password"


def sign_in(base: str) -> httpx.Cookies:
    """Sign in through the login form; returns the session cookie."""
    with httpx.Client(base_url=base, timeout=30) as client:
        form = client.get("/login").text
        found = re.search(r'name="login_csrf" value="([^"]+)"', form)
        if not found:
            raise SystemExit("the login page has no form token")
        answer = client.post(
            "/login", data={"email": EMAIL, "password": PASSWORD, "login_csrf": found.group(1)}
        )
        if answer.status_code != 303:
            raise SystemExit(f"sign-in failed: {answer.status_code}")
        return client.cookies


def listen(base: str, cookies: httpx.Cookies, events: queue.Queue[float] | None) -> None:
    """Read one event stream; put the arrival time of each `changed` event on `events`."""
    try:
        with httpx.stream("GET", f"{base}/live", cookies=cookies, timeout=None) as stream:
            for line in stream.iter_lines():
                if line.startswith("event: changed") and events is not None:
                    events.put(time.perf_counter())
    except httpx.HTTPError:
        return


def inbound(base: str, client: httpx.Client, number: int) -> None:
    """Post one signed inbound webhook and wait for relaydesk's answer."""
    params = {
        "MessageSid": "SM" + secrets.token_hex(16),
        "AccountSid": "AC" + "0" * 32,
        "From": f"+48600{number:06d}",
        "To": "+15005550006",
        "Body": f"bench message {number}",
        "NumMedia": "0",
    }
    url = f"{base}/twilio/inbound"
    answer = client.post(
        url, data=params, headers={"X-Twilio-Signature": sign(url, params, BENCH_AUTH_TOKEN)}
    )
    if answer.status_code != 200:
        raise SystemExit(f"webhook answered {answer.status_code}: {answer.text[:200]}")


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description="Latency of the panel's live updates.")
    parser.add_argument("--messages", type=int, default=30, help="webhooks to time")
    parser.add_argument("--listeners", type=int, default=20, help="open event streams")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    exit_on_sigterm()
    print(environment())
    data_dir = Path(tempfile.mkdtemp(prefix="relaydesk-live-"))
    port = free_port()
    env = server_env(data_dir, port)
    base = f"http://{HOST}:{port}"
    server = Server(data_dir, port, env, data_dir / "server.log")
    try:
        run_cli(["migrate"], env, data_dir)
        run_cli(
            ["user", "create", "--email", EMAIL, "--password", PASSWORD, "--role", "viewer"],
            env,
            data_dir,
        )
        server.start()
        cookies = sign_in(base)
        events: queue.Queue[float] = queue.Queue()
        threads = [threading.Thread(target=listen, args=(base, cookies, events), daemon=True)]
        threads += [
            threading.Thread(target=listen, args=(base, cookies, None), daemon=True)
            for _ in range(args.listeners - 1)
        ]
        for thread in threads:
            thread.start()
        time.sleep(2.5)  # streams open and the server's first check has run

        cpu0, wall0 = process_cpu(server.pid), time.perf_counter()
        time.sleep(args.idle_seconds)
        idle_cpu = (process_cpu(server.pid) - cpu0) / (time.perf_counter() - wall0)

        latencies = []
        rng = random.Random(7)
        with httpx.Client(timeout=30) as client:
            for n in range(args.messages):
                time.sleep(rng.uniform(0.0, 1.0))
                while not events.empty():
                    events.get_nowait()
                inbound(base, client, n)
                stored = time.perf_counter()
                try:
                    arrived = events.get(timeout=10)
                except queue.Empty:
                    raise SystemExit(f"no live event within 10 s for message {n}") from None
                latencies.append(max(0.0, arrived - stored) * 1000)
        latencies.sort()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)

    p95 = percentile(latencies, 95)
    print(f"\n== live updates: {args.messages} inbound webhooks, {args.listeners} open pages ==")
    print(
        f"  webhook stored -> page told: p50 {percentile(latencies, 50):.0f} ms, "
        f"p95 {p95:.0f} ms, max {latencies[-1]:.0f} ms"
    )
    print(
        f"  server CPU with {args.listeners} pages open and nothing happening: "
        f"{idle_cpu * 100:.1f}% of one core"
    )
    ok = p95 < TARGET_P95_MS
    print(f"  target p95 < {TARGET_P95_MS:.0f} ms: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
