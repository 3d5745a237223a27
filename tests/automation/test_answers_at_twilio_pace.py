"""Automatic answers against a Twilio that takes its time to reply (e2e: the real `serve`
and the emulator as its own process, SQLite or PostgreSQL).

Twilio answers a Messages.create in a tenth of a second or more. If a flood's answers
were handed over one call after the other in a few worker threads, the thousandth
customer would wait for a thousand round trips divided by those threads; so the calls of
a batch of answers are in flight together, up to SEND_CONCURRENCY a process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.automation.test_answer_restart import (
    answer_sids,
    emulator_api,
    set_latency,
    taken_by_twilio,
)
from tests.processes import Deployment, wait_until

pytestmark = pytest.mark.e2e

REPLY = "Dziękujemy, odpiszemy wkrótce."
# Twilio's reply to each call (within TWILIO_TIMEOUT_SECONDS); the check ends before.
HELD_MS = 10_000


def test_a_flood_of_answers_is_in_flight_at_twilio_together(tmp_path: Path) -> None:
    """Twelve customers write at once while Twilio holds every reply for 10 s: all twelve
    answers reach Twilio while it still holds the first (a call after another in four
    worker threads would have reached it with four). The server is SIGKILLed then, with
    every call unanswered; after the restart each customer has exactly one answer at
    Twilio, and the one each reads through the API carries the SID Twilio gave it."""
    customers = [f"+486007005{i:02d}" for i in range(12)]
    deployment = Deployment(tmp_path, standalone_sandbox=True)
    twilio = emulator_api(deployment)

    def answered() -> dict[str, list[str]]:
        return answer_sids(deployment, customers)

    try:
        deployment.start()
        with deployment.admin_client() as api:
            assert api.put("/api/automation/rules", json={"debounce_seconds": 0}).is_success
            assert api.put("/api/auto-reply", json={"enabled": True, "message": REPLY}).is_success
        set_latency(twilio, HELD_MS)
        deployment.customers_write_at_once({n: f"Pytanie {n}" for n in customers})
        wait_until(
            lambda: taken_by_twilio(tmp_path) == len(customers),
            HELD_MS / 1000 * 0.8,
            "Twilio to hold every answer at once",
            deployment,
        )
        assert not any(answered().values())  # Twilio has replied to none of them yet
        deployment.kill()
        set_latency(twilio, 0)
        deployment.start()
        wait_until(lambda: all(answered().values()), 90, "every answer's SID", deployment)
        sids = answered()
        sent = deployment.emulator_messages()
    finally:
        deployment.stop()
        twilio.close()
    for number in customers:
        at_twilio = [m for m in sent if str(m.to) == number]
        assert [str(m.body) for m in at_twilio] == [REPLY]
        assert sids[number] == [at_twilio[0].sid]
