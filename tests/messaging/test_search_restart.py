"""The search index after a SIGKILL: the real `relaydesk serve` is killed while it stores
and indexes a burst of messages, started again on the same data, and its indexer catches
up by itself; every message is found once, from the index (e2e: SQLite or PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.processes import Deployment, wait_until

pytestmark = pytest.mark.e2e

BURST = 300


def all_hits(client: httpx.Client, q: str) -> list[int]:
    ids: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"q": q, "limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/search", params=params)
        assert page.status_code == 200, page.text
        ids += [hit["id"] for hit in page.json()["items"]]
        cursor = page.json()["next"]
        if not cursor:
            return ids


def behind(deployment: Deployment) -> int:
    out = deployment.run("search", "status")
    line = next(x for x in out.splitlines() if x.startswith("still to read:"))
    return int(line.split(":")[1])


def test_the_index_catches_up_after_a_kill_and_finds_every_message_once(tmp_path: Path) -> None:
    deployment = Deployment(tmp_path)
    try:
        deployment.start()
        token = deployment.run("token", "create", "search", "--role", "viewer")
        headers = {"Authorization": f"Bearer {token.strip().splitlines()[-1]}"}
        for n in range(BURST):
            deployment.customer_writes(
                f"+48600{n % 50:06d}", f"Zgłaszam reklamację nr {n}, paczka {n}"
            )
        deployment.kill()  # whatever the indexer had read, it had not finished
        deployment.start()
        wait_until(
            lambda: behind(deployment) == 0,
            timeout=90,
            what="the indexer to catch up after the restart",
            deployment=deployment,
        )
        with httpx.Client(base_url=deployment.url, headers=headers, timeout=30) as api:
            found = all_hits(api, "reklamacja")
            assert len(found) == BURST and len(set(found)) == BURST
            messages = api.get("/api/messages", params={"limit": 1}).json()["counts"]["total"]
            assert messages == BURST
            # One message by its own number, from the index.
            one = api.get("/api/search", params={"q": "paczka 123"}).json()["items"]
            assert any("nr 123," in hit["snippet"] for hit in one)
        out = deployment.run("search", "status")
        assert "messages indexed up to id" in out and "still to read:   0" in out
    finally:
        deployment.stop()
