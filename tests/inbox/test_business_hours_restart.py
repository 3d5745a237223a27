"""The out-of-office answer goes once per closed period across a restart (SIGKILL).

A real `relaydesk serve` (its own clock: the wall clock) on a SQLite file or a
PostgreSQL database; the business is closed for days around today (holidays in a week
that is otherwise open all day), so the closed period began at yesterday's midnight
whatever time the test runs. A customer writes, the server is killed and started again
on the same database, the customer writes again in the same closed period: the
emulator's own Messages list and the messages table hold one out-of-office answer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes import Deployment, wait_until

# Real relaydesk processes (serve, worker, CLI subprocesses): the e2e tier.
pytestmark = pytest.mark.e2e

CUSTOMER = "+48600800001"
CLOSED = "Jesteśmy zamknięci do poniedziałku."


def runs(client: httpx.Client) -> list[dict[str, Any]]:
    """The customer's automation runs as the API lists them, oldest first."""
    found = client.get("/api/automation/runs", params={"participant": CUSTOMER}).json()
    return sorted(found, key=lambda run: run["id"])


def out_of_office_answers(client: httpx.Client) -> list[str]:
    """Automatic answers to the customer in relaydesk's messages, as the API lists them."""
    params = {"direction": "outbound", "participant": CUSTOMER}
    return [m["body"] for m in client.get("/api/messages", params=params).json()["items"]]


def test_the_out_of_office_answer_goes_once_per_closed_period_across_a_restart(
    tmp_path: Path,
) -> None:
    deployment = Deployment(tmp_path)
    try:
        deployment.start()
        admin = deployment.run("token", "create", "hours", "--role", "admin")
        client = httpx.Client(
            base_url=deployment.url,
            headers={"Authorization": f"Bearer {admin.strip().splitlines()[-1]}"},
            timeout=30,
        )
        today = datetime.now(UTC).date()
        closed_days = [(today + timedelta(days=n)).isoformat() for n in (-1, 0, 1)]
        hours = client.put(
            "/api/business-hours",
            json={
                "enabled": True,
                "timezone": "UTC",
                "days": [[["00:00", "24:00"]]] * 7,
                "holidays": closed_days,
                "message": CLOSED,
            },
        )
        assert hours.status_code == 200, hours.text
        assert hours.json()["open_now"] is False
        assert client.put("/api/automation/rules", json={"debounce_seconds": 0}).is_success

        deployment.customer_writes(CUSTOMER, "Dzień dobry, czy jest ktoś?")
        wait_until(
            lambda: [str(m.body) for m in deployment.emulator_messages()] == [CLOSED],
            timeout=60,
            what="the out-of-office answer at the emulator",
            deployment=deployment,
        )
        client.close()
        deployment.kill()
        deployment.start()
        client = httpx.Client(base_url=deployment.url, headers=dict(client.headers), timeout=30)

        deployment.customer_writes(CUSTOMER, "Halo? Pilna sprawa.")
        done = wait_until(
            lambda: len(found := runs(client)) == 2 and found[1]["state"] == "done" and found,
            timeout=60,
            what="the second message's run",
            deployment=deployment,
        )
        first, second = done
        assert first["outcome"] == second["outcome"] == "out_of_office"
        assert first["reply_message_id"] is not None
        assert second["reply_message_id"] is None
        assert "already sent in this closed period" in second["detail"]
        assert [str(m.body) for m in deployment.emulator_messages()] == [CLOSED]
        assert out_of_office_answers(client) == [CLOSED]
        client.close()
    finally:
        deployment.stop()
