"""A campaign whose server is killed with SIGKILL mid-run finishes after a restart.

What a user runs, with its default settings (leases), but its sweeps every second
instead of every minute (SWEEP_SECONDS=1): the real `relaydesk serve` (or `serve
--no-worker` plus `relaydesk worker` with Redis), the campaign made through the API,
SIGKILL once some recipients have gone out, the same installation started again. The
outcome is read from the outside: the emulator's own Messages list (what "Twilio"
accepted) and the batch as the API shows it, which must never say "completed" while a
recipient has no outcome.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes import Deployment, poll, redis_server, wait_until

# Real relaydesk processes (serve, worker, CLI subprocesses): the e2e tier.
pytestmark = pytest.mark.e2e

RECIPIENTS = [f"+48600900{i:03d}" for i in range(30)]


@pytest.fixture(params=["serve", "redis-and-worker"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    """An installation sending 4 messages a second, as a small sender allows."""
    if request.param == "serve":
        made = Deployment(tmp_path, CAMPAIGN_RATE_MPS="4")
        yield made
        made.stop()
        return
    with redis_server() as url:
        made = Deployment(tmp_path, redis_url=url, CAMPAIGN_RATE_MPS="4")
        yield made
        made.stop()


class BatchWatch:
    """Reads the batch all the time and keeps what a user must never see."""

    def __init__(self, deployment: Deployment, batch_id: int) -> None:
        self.client = deployment.client()
        self.path = f"/api/multi-sms/batches/{batch_id}"
        self.untrue: list[dict[str, Any]] = []
        self.last: dict[str, Any] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            try:
                view = self.client.get(self.path).json()
            except (httpx.HTTPError, ValueError):
                poll(0.2)  # the server is down (killed) or starting
                continue
            self.last = view
            counters = view["counters"]
            if view["status"] == "completed" and counters["pending"] + counters["sending"]:
                self.untrue.append(view)
            poll(0.1)

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=10)
        self.client.close()


def test_a_killed_campaign_finishes_after_a_restart_with_every_recipient_once(
    deployment: Deployment,
) -> None:
    deployment.start()
    with deployment.client() as client:
        created = client.post(
            "/api/multi-sms/batches", json={"numbers": "\n".join(RECIPIENTS), "body": "Raz!"}
        )
    assert created.status_code == 201, created.text
    watch = BatchWatch(deployment, created.json()["id"])
    try:
        wait_until(
            lambda: sum(deployment.sent_to().values()) >= 6,
            timeout=120,
            what="the first recipients at the emulator",
            deployment=deployment,
        )
        deployment.kill()
        deployment.start()
        sent_before = sum(deployment.sent_to().values())
        assert sent_before < len(RECIPIENTS), "the campaign finished before the kill"

        wait_until(
            lambda: watch.last.get("status") == "completed",
            timeout=300,
            what="the campaign to complete after the restart",
            deployment=deployment,
        )
        counts = deployment.sent_to()
        assert sorted(counts) == sorted(RECIPIENTS)
        assert set(counts.values()) == {1}, [n for n, c in counts.items() if c > 1]
        assert watch.untrue == [], "completed while recipients had no outcome"
        final = watch.last["counters"]
        assert final["sent"] == len(RECIPIENTS)
        assert final["pending"] == final["sending"] == final["failed"] == 0
        # The emulator's callbacks due at the restart wait until relaydesk listens
        # (Twilio would not retry them): every delivery is known, none stays "sent".
        wait_until(
            lambda: watch.last["counters"]["delivered"] == len(RECIPIENTS),
            timeout=120,
            what="every delivery to be recorded",
            deployment=deployment,
        )
    finally:
        watch.stop()


def test_twilio_unreachable_mid_campaign_holds_the_rest_until_it_is_back(tmp_path: Path) -> None:
    """An outage must not hand the whole list to the retry queue and call it completed."""
    deployment = Deployment(tmp_path, standalone_sandbox=True, CAMPAIGN_RATE_MPS="4")
    try:
        deployment.start()
        with deployment.client() as client:
            created = client.post(
                "/api/multi-sms/batches",
                json={"numbers": "\n".join(RECIPIENTS), "body": "Raz!"},
            )
            assert created.status_code == 201, created.text
            batch_id = created.json()["id"]
            watch = BatchWatch(deployment, batch_id)
            try:
                wait_until(
                    lambda: sum(deployment.sent_to().values()) >= 6,
                    timeout=120,
                    what="the first recipients at the emulator",
                    deployment=deployment,
                )
                deployment.kill_sandbox()

                def retrying() -> bool:
                    rows = client.get(f"/api/multi-sms/batches/{batch_id}/recipients").json()
                    return any("retrying" in (r["error_message"] or "") for r in rows)

                wait_until(retrying, 120, "a message waiting for its retry", deployment)
                during = client.get(f"/api/multi-sms/batches/{batch_id}").json()
                assert during["status"] == "processing"
                # Claims stopped: most of the list is still waiting its turn.
                assert during["counters"]["pending"] >= len(RECIPIENTS) // 2, during

                deployment.start_sandbox()
                wait_until(
                    lambda: watch.last.get("status") == "completed",
                    timeout=300,
                    what="the campaign to complete once Twilio is back",
                    deployment=deployment,
                )
            finally:
                watch.stop()
        counts = deployment.sent_to()
        assert sorted(counts) == sorted(RECIPIENTS)
        assert set(counts.values()) == {1}, [n for n, c in counts.items() if c > 1]
        assert watch.untrue == [], "completed while recipients had no outcome"
        assert watch.last["counters"]["sent"] == len(RECIPIENTS)
    finally:
        deployment.stop()


def test_a_killed_whatsapp_campaign_to_a_segment_goes_from_our_whatsapp_address_once(
    tmp_path: Path,
) -> None:
    """A segment of WhatsApp customers (each wrote today) gets a campaign from the plain
    SMS sender: each message goes from our WhatsApp address, the one the customer wrote
    to, and a SIGKILL mid-run neither loses nor repeats anyone."""

    ours = "whatsapp:+15005550006"
    customers = [f"whatsapp:+48600800{i:03d}" for i in range(24)]
    deployment = Deployment(tmp_path, CAMPAIGN_RATE_MPS="4")
    try:
        deployment.start()
        for number in customers:
            deployment.customer_writes(number, "Dzień dobry, czy są nowe promocje?", to=ours)
        with deployment.client() as client:
            segment = client.post(
                "/api/segments", json={"name": "WhatsApp", "rules": {"channel": "whatsapp"}}
            )
            assert segment.status_code == 201, segment.text
            created = client.post(
                "/api/multi-sms/batches",
                json={"segment_id": segment.json()["id"], "body": "Nowa promocja: -20%"},
            )
        assert created.status_code == 201, created.text
        watch = BatchWatch(deployment, created.json()["id"])
        try:
            wait_until(
                lambda: sum(deployment.sent_to().values()) >= 5,
                timeout=120,
                what="the first recipients at the emulator",
                deployment=deployment,
            )
            deployment.kill()
            deployment.start()
            assert sum(deployment.sent_to().values()) < len(customers), "finished before the kill"
            wait_until(
                lambda: watch.last.get("status") == "completed",
                timeout=300,
                what="the campaign to complete after the restart",
                deployment=deployment,
            )
        finally:
            watch.stop()
        sent = deployment.emulator_messages()
        assert sorted(str(m.to) for m in sent) == sorted(customers)  # each exactly once
        assert {str(m.from_) for m in sent} == {ours}
        assert watch.untrue == [], "completed while recipients had no outcome"
        assert watch.last["counters"]["sent"] == len(customers)
    finally:
        deployment.stop()
