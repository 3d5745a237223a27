"""Messages delivered by a queued job (a scheduled send, a reminder, a retry) against a
Twilio that takes its time (e2e: the real `serve`, the emulator as its own process,
SQLite or PostgreSQL).

A job's Twilio call is made in the process's call threads, not in the live worker
thread that ran the job: a dozen messages due at once must not hold the four worker
threads for a round trip each while a customer's message waits behind them.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.automation.test_answer_restart import (
    answer_sids,
    emulator_api,
    set_latency,
    taken_by_twilio,
)
from tests.processes import Deployment, redis_server, wait_until

pytestmark = pytest.mark.e2e

REPLY = "Dziękujemy, odpiszemy wkrótce."
CUSTOMER = "+48600700999"
# Twilio's reply to each call, within the deployment's TWILIO_TIMEOUT_SECONDS; every
# check of the held calls ends well before the first reply.
HELD_MS = 30_000


def test_messages_due_at_once_are_at_twilio_together_and_a_customer_is_answered_meanwhile(
    tmp_path: Path,
) -> None:
    """Twelve scheduled messages come due together while Twilio holds every reply for
    30 s: all twelve reach Twilio while it holds the first (one call per worker thread
    would have brought four), and a customer who writes then is answered while they are
    held. SIGKILLed with every call unanswered and restarted, the server asks Twilio
    instead of sending again: each number has exactly one message at Twilio, and the
    API shows the SID Twilio gave it."""
    recipients = [f"+486007006{i:02d}" for i in range(12)]
    deployment = Deployment(
        tmp_path, standalone_sandbox=True, TWILIO_TIMEOUT_SECONDS=str(HELD_MS / 1000 * 2)
    )
    twilio = emulator_api(deployment)
    everyone = [*recipients, CUSTOMER]
    try:
        deployment.start()
        with deployment.admin_client() as api:
            assert api.put("/api/automation/rules", json={"debounce_seconds": 0}).is_success
            assert api.put("/api/auto-reply", json={"enabled": True, "message": REPLY}).is_success
        set_latency(twilio, HELD_MS)
        due = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        with deployment.client() as api:
            for number in recipients:
                made = api.post(
                    "/api/send-message",
                    json={"to": number, "body": f"Przypomnienie {number}", "send_at": due},
                )
                assert made.status_code == 201, made.text
                assert made.json()["status"] == "scheduled"
        window = HELD_MS / 1000 * 0.6
        wait_until(
            lambda: taken_by_twilio(tmp_path) == len(recipients),
            window,
            "Twilio to hold every scheduled message at once",
            deployment,
        )
        deployment.customer_writes(CUSTOMER, "Czy mogę przełożyć wizytę?")
        wait_until(
            lambda: taken_by_twilio(tmp_path, CUSTOMER) == 1,
            window / 2,
            "the customer's answer to reach Twilio while the others are held",
            deployment,
        )
        assert not any(answer_sids(deployment, everyone).values())  # no reply yet
        deployment.kill()
        set_latency(twilio, 0)
        deployment.start()
        wait_until(
            lambda: all(answer_sids(deployment, everyone).values()),
            90,
            "every message's SID",
            deployment,
        )
        sids = answer_sids(deployment, everyone)
        sent = deployment.emulator_messages()
    finally:
        deployment.stop()
        twilio.close()
    for number in everyone:
        at_twilio = [m for m in sent if str(m.to) == number]
        assert len(at_twilio) == 1, (number, [m.body for m in at_twilio])
        assert sids[number] == [at_twilio[0].sid]
    assert [str(m.body) for m in sent if str(m.to) == CUSTOMER] == [REPLY]


@pytest.mark.parametrize("queue", ["sqlite", "redis"])
def test_a_customer_s_answer_goes_before_a_backlog_of_messages_due_at_once(
    tmp_path: Path, queue: str
) -> None:
    """Three hundred scheduled messages come due together on one live worker thread; a
    customer who writes once they have started going out is answered before most of
    them (their jobs wait behind the customer's on the queue), and every number still
    gets exactly one message. On the default SQLite queue (one `serve`) and on Redis
    (`serve --no-worker` and a `worker`)."""
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(redis_server()) if queue == "redis" else None
        backlog_before_the_answer(tmp_path, redis_url)


def backlog_before_the_answer(tmp_path: Path, redis_url: str | None) -> None:
    recipients = [f"+48600710{i:03d}" for i in range(300)]
    deployment = Deployment(
        tmp_path, redis_url=redis_url, standalone_sandbox=True, WORKER_THREADS="1"
    )
    try:
        deployment.start()
        with deployment.admin_client() as api:
            assert api.put("/api/automation/rules", json={"debounce_seconds": 0}).is_success
            assert api.put("/api/auto-reply", json={"enabled": True, "message": REPLY}).is_success
        due = (datetime.now(UTC) + timedelta(seconds=20)).isoformat()
        with deployment.client() as api, ThreadPoolExecutor(8) as pool:

            def schedule(number: str) -> int:
                made = api.post(
                    "/api/send-message",
                    json={"to": number, "body": f"Przypomnienie {number}", "send_at": due},
                )
                return made.status_code

            assert set(pool.map(schedule, recipients)) == {201}
        wait_until(lambda: taken_by_twilio(tmp_path) > 0, 60, "the first to go out", deployment)
        deployment.customer_writes(CUSTOMER, "Czy mogę przełożyć wizytę?")
        wait_until(lambda: taken_by_twilio(tmp_path, CUSTOMER) == 1, 60, "the answer", deployment)
        before_the_answer = taken_by_twilio(tmp_path) - 1
        wait_until(lambda: taken_by_twilio(tmp_path) == len(recipients) + 1, 120, "all", deployment)
        sent = deployment.sent_to()
    finally:
        deployment.stop()
    assert before_the_answer < len(recipients) // 2, before_the_answer
    assert sent == {number: 1 for number in [*recipients, CUSTOMER]}
