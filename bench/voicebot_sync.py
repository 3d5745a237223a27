"""Benchmark: voice-bot sync throughput against the fake ElevenLabs with network latency.

What it measures
    A month of synthetic conversations for two agents (tests/voicebot/fixtures.py) is
    served by the fake ElevenLabs server on loopback (tests/fakes/elevenlabs.py), which
    waits `latency_ms` before answering every request, like a far-away API. One full
    sync job runs in this process, as the worker would run it, against a fresh SQLite
    database in a temporary DATA_DIR: it lists every page (100 conversations a page),
    fetches every conversation's details (DETAIL_WORKERS at a time) and stores them.
    Prints conversations per second, the requests made and the wall time. A second
    sync of the same data is timed too: it lists but fetches no details.

Run (about 30 seconds with the defaults):

    .venv/bin/python bench/voicebot_sync.py
    .venv/bin/python bench/voicebot_sync.py --conversations 500 --latency-ms 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the fake server and the fixture data live under tests/

BENCH_KEY = "xi-bench-key-0123456789"


def _prepare_environment(data_dir: Path, base_url: str) -> None:
    """Point relaydesk at a fresh data directory and the fake (before settings are read)."""
    from relaydesk.core.config import Settings

    names = {name.upper() for name in Settings.model_fields}
    for name in list(os.environ):
        if name.upper() in names or name.upper().removesuffix("_FILE") in names:
            del os.environ[name]
    os.environ.update(
        {
            "DATA_DIR": str(data_dir),
            "LOG_LEVEL": "WARNING",
            "ELEVENLABS_API_KEY": BENCH_KEY,
            "ELEVENLABS_BASE_URL": base_url,
        }
    )


def _sync_once() -> tuple[float, dict[str, Any]]:
    from relaydesk.core.db import session_scope
    from relaydesk.jobs import service as jobs
    from relaydesk.jobs.models import Job
    from relaydesk.voicebot import service

    with session_scope() as session:
        job_id = service.start(session, trigger="manual", actor="bench").id
    started = time.perf_counter()
    jobs.run(job_id)  # the worker's call, made here so the clock sees only the sync
    elapsed = time.perf_counter() - started
    with session_scope(write=False) as session:
        job = session.get(Job, job_id)
        assert job is not None
        if job.status != "done":
            raise SystemExit(f"the sync failed: {job.error}")
        return elapsed, dict(job.result or {})


def measure_sync(conversations: int, latency_ms: float) -> dict[str, Any]:
    """Sync `conversations` from the fake answering after `latency_ms`; throughput figures."""
    from tests.fakes.elevenlabs import FakeElevenLabs
    from tests.voicebot.fixtures import AGENTS, month_of_conversations

    fake = FakeElevenLabs(api_key=BENCH_KEY)
    fake.validate_responses = False  # the tests validate answers; here it would be the cost
    now = time.gmtime()
    for call in month_of_conversations(conversations, year=now.tm_year, month=now.tm_mon, days=1):
        fake.add_conversation(call.details, direction=call.direction)
    fake.latency = latency_ms / 1000
    fake.start()
    try:
        with tempfile.TemporaryDirectory(prefix="relaydesk-bench-voicebot-") as tmp:
            _prepare_environment(Path(tmp), fake.base_url)
            from relaydesk import migrations
            from relaydesk.core.db import session_scope
            from relaydesk.voicebot import settings, sync

            migrations.upgrade()
            with session_scope() as session:
                settings.save(session, agent_ids=list(AGENTS), api_key=False, actor="bench")
            first_s, first = _sync_once()
            first_requests = len(fake.requests)
            again_s, again = _sync_once()
    finally:
        fake.stop()
    return {
        "conversations": conversations,
        "latency_ms": latency_ms,
        "detail_workers": sync.DETAIL_WORKERS,
        "seconds": round(first_s, 2),
        "conversations_per_second": round(first["fetched"] / first_s, 1),
        "requests": first_requests,
        "stored": first["created"],
        "second_sync_seconds": round(again_s, 2),
        "second_sync_requests": len(fake.requests) - first_requests,
        "second_sync_fetched": again["fetched"],
    }


def main() -> None:
    """Print the figures for a month of 2,000 conversations at 50 ms latency."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    print(json.dumps(measure_sync(args.conversations, args.latency_ms), indent=2))


if __name__ == "__main__":
    main()
