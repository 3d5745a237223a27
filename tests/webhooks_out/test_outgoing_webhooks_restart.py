"""Outgoing webhooks across a SIGKILL: the real `relaydesk serve` is killed while its
sender waits for the receiver's answer, started again on the same data, and every
event reaches the receiver, signed, with nothing lost (e2e: SQLite or PostgreSQL).

At least once, as the sender promises: an event whose answer the killed process never
read is sent again after its lease, with the same webhook-id; nothing else twice, and a
delivery reads *delivered* only after the receiver answered it.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaydesk.webhooks_out import sender
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.processes import Deployment, wait_until

pytestmark = pytest.mark.e2e
standardwebhooks = pytest.importorskip("standardwebhooks")

CUSTOMERS = [f"+4860070{n:04d}" for n in range(5)]
PER_CUSTOMER = 8


class Gate:
    """Holds the receiver's answers until opened; counts what arrived, by webhook-id."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.waiting = 0
        self.arrived: Counter[str] = Counter()
        self.lock = threading.Lock()

    def answer(self, body: bytes) -> int:
        with self.lock:
            self.arrived[json.loads(body)["id"]] += 1
            self.waiting += 1
        self.opened.wait(60)
        return 200


def all_deliveries(api: httpx.Client, endpoint_id: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = api.get(
            f"/api/webhooks/{endpoint_id}/deliveries", params={"cursor": cursor} if cursor else {}
        )
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next"]
        if not cursor:
            return items


def test_a_kill_mid_delivery_loses_no_event_and_repeats_only_unanswered_ones(
    tmp_path: Path,
) -> None:
    gate = Gate()
    deployment = Deployment(tmp_path, WEBHOOKS_ALLOW_PRIVATE_NETWORKS="true")
    with WebhookReceiver(answer=gate.answer) as receiver:
        try:
            deployment.start()
            made = deployment.run("token", "create", "crm-admin", "--role", "admin")
            headers = {"Authorization": f"Bearer {made.strip().splitlines()[-1]}"}
            api = httpx.Client(base_url=deployment.url, headers=headers, timeout=30)
            endpoint = api.post(
                "/api/webhooks", json={"url": receiver.url, "events": ["message.received"]}
            )
            assert endpoint.status_code == 201, endpoint.text
            endpoint_id, secret = endpoint.json()["id"], endpoint.json()["secret"]

            for n in range(PER_CUSTOMER):
                for number in CUSTOMERS:
                    deployment.customer_writes(number, f"Wiadomość {n} od {number}")
            # Each customer's first event is at the receiver, its answer held: kill now.
            wait_until(
                lambda: gate.waiting >= len(CUSTOMERS),
                timeout=60,
                what="the first deliveries to reach the receiver",
                deployment=deployment,
            )
            deployment.kill()
            in_flight = set(gate.arrived)
            gate.opened.set()  # the receiver answers, but nobody reads it any more
            api.close()

            deployment.start()
            api = httpx.Client(base_url=deployment.url, headers=headers, timeout=30)
            # The held ones come back after their lease (a minute), the rest right away.
            wait_until(
                lambda: all(d["state"] == "delivered" for d in all_deliveries(api, endpoint_id)),
                timeout=sender.LEASE.total_seconds() + 90,
                what="every delivery to be answered after the restart",
                deployment=deployment,
            )
            deliveries = all_deliveries(api, endpoint_id)
            messages = api.get("/api/messages", params={"limit": 100}).json()["items"]
        finally:
            deployment.stop()

    total = len(CUSTOMERS) * PER_CUSTOMER
    assert len(messages) == total and len(deliveries) == total
    # Every message's event arrived, signed with the endpoint's secret...
    events = [standardwebhooks.Webhook(secret).verify(r.body, r.headers) for r in receiver.received]
    assert {e["data"]["id"] for e in events} == {m["id"] for m in messages}
    assert set(gate.arrived) == {d["event_id"] for d in deliveries}
    # ...and only the ones whose answer the killed process never read came twice.
    twice = {event_id for event_id, n in gate.arrived.items() if n > 1}
    assert twice <= in_flight and max(gate.arrived.values()) <= 2
    # Per customer, in the order they wrote (a repeat comes before anything newer).
    for number in CUSTOMERS:
        bodies = [e["data"]["body"] for e in events if e["data"]["from"] == number]
        firsts = list(dict.fromkeys(bodies))
        assert firsts == [f"Wiadomość {n} od {number}" for n in range(PER_CUSTOMER)]
