"""The scale-out setup survives losing a worker and a web process mid-traffic.

PostgreSQL, Redis, a standalone emulator ("Twilio"), two `relaydesk serve --no-worker`
web processes and two `relaydesk worker` processes, all on loopback. Customers write to
both web processes while a campaign goes out; one worker and one web process are
SIGKILLed mid-way. From the outside: the emulator's own Messages list has every
recipient exactly once, the campaign says completed only when that is true, and every
webhook that was acknowledged with a 2xx is in the messages the API lists.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from relaydesk.channels.twilio.signature import sign
from tests.conftest import AUTH_TOKEN, BACKEND, missing
from tests.pgserver import PgCluster, find_bindir
from tests.processes import ScaledDeployment, database_url, poll, redis_server, wait_until

pytestmark = pytest.mark.e2e

RECIPIENTS = [f"+48601{i:06d}" for i in range(240)]
OUR_NUMBER = "+15005550006"


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[str]:
    """A PostgreSQL database for this deployment, whatever the suite's backend."""
    if BACKEND == "postgresql":
        yield database_url(tmp_path)
        return
    bindir = find_bindir()
    if bindir is None:
        missing("PostgreSQL (initdb, pg_ctl) is not installed")
        return
    cluster = PgCluster(bindir)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


class Customers:
    """Signed inbound webhooks spread over every web process; keeps the acknowledged SIDs."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.acked: list[str] = []
        self.refused = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            for n in itertools.count():
                if self.stop.is_set():
                    return
                base = self.urls[n % len(self.urls)]
                url = f"{base}/twilio/inbound"
                sid = f"SM{n:032x}"
                params = {
                    "MessageSid": sid,
                    "From": f"+48602{n % 500:06d}",
                    "To": OUR_NUMBER,
                    "Body": f"pytanie {n}",
                }
                try:
                    answer = client.post(
                        url,
                        data=params,
                        headers={"X-Twilio-Signature": sign(url, params, AUTH_TOKEN)},
                    )
                except httpx.HTTPError:
                    self.refused += 1  # that web process is gone: no acknowledgement
                    continue
                if 200 <= answer.status_code < 300:
                    self.acked.append(sid)
                else:
                    self.refused += 1
                poll(0.02)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def inbound_sids(client: httpx.Client) -> set[str]:
    """Every inbound message's SID as the API lists them, page by page."""
    found: set[str] = set()
    cursor: str | None = None
    while True:
        params = {"direction": "inbound", "limit": "200", **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/messages", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        found.update(m["sid"] for m in body["items"])
        cursor = body["next"]
        if not cursor:
            return found


def test_two_webs_and_two_workers_lose_nothing_and_send_nothing_twice_when_one_of_each_dies(
    tmp_path: Path, postgres: str
) -> None:
    with redis_server() as redis_url:
        counters = tmp_path / "metrics"
        counters.mkdir()
        deployment = ScaledDeployment(
            tmp_path / "data",
            database=postgres,
            redis_url=redis_url,
            CAMPAIGN_RATE_MPS="20",
            PROMETHEUS_MULTIPROC_DIR=str(counters),
        )
        customers: Customers | None = None
        try:
            deployment.start()
            customers = Customers(deployment.web_urls)
            with deployment.client() as client:
                created = client.post(
                    "/api/multi-sms/batches",
                    json={"numbers": "\n".join(RECIPIENTS), "body": "Promocja!"},
                )
                assert created.status_code == 201, created.text
                batch = f"/api/multi-sms/batches/{created.json()['id']}"
                wait_until(
                    lambda: sum(deployment.sent_to().values()) >= 40 and len(customers.acked) >= 40,
                    timeout=120,
                    what="the campaign and the customers under way",
                    deployment=deployment,
                )
                deployment.kill_one("worker0")
                deployment.kill_one("web1")
                sent_at_kill = sum(deployment.sent_to().values())
                assert sent_at_kill < len(RECIPIENTS), "the campaign finished before the kill"
                acked_at_kill = len(customers.acked)
                wait_until(
                    lambda: len(customers.acked) >= acked_at_kill + 40,
                    timeout=60,
                    what="webhooks still acknowledged by the web process left",
                    deployment=deployment,
                )
                customers.finish()

                def completed() -> bool:
                    view = client.get(batch).json()
                    counters = view["counters"]
                    if view["status"] == "completed":
                        assert counters["pending"] + counters["sending"] == 0, view
                        return True
                    return False

                wait_until(
                    completed, timeout=300, what="the campaign to complete", deployment=deployment
                )
                counts = deployment.sent_to()
                campaign = {n: c for n, c in counts.items() if n in set(RECIPIENTS)}
                assert sorted(campaign) == sorted(RECIPIENTS)
                assert set(campaign.values()) == {1}, [n for n, c in campaign.items() if c > 1]

                stored = inbound_sids(client)
                lost = [sid for sid in customers.acked if sid not in stored]
                assert lost == [], f"{len(lost)} acknowledged webhooks are not stored"
                assert customers.refused > 0, "no webhook was sent to the killed web process"

                # Any web process's /metrics adds up every process's counters, the
                # workers' sends (the killed one's included) among them.
                scraped = client.get("/metrics")
                assert scraped.status_code == 200, scraped.text
                accepted = [
                    line
                    for line in scraped.text.splitlines()
                    if line.startswith('relaydesk_sends_total{outcome="accepted"}')
                ]
                assert accepted and float(accepted[0].split()[-1]) >= len(RECIPIENTS), accepted
                acked = [
                    line
                    for line in scraped.text.splitlines()
                    if line.startswith("relaydesk_webhooks_total")
                    and 'outcome="accepted"' in line
                    and 'kind="inbound"' in line
                ]
                assert acked and float(acked[0].split()[-1]) >= len(customers.acked), acked
        finally:
            if customers is not None:
                customers.finish()
            deployment.stop()
