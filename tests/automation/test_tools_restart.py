"""A booking tool across a SIGKILL of the real `relaydesk serve` (e2e: SQLite or
PostgreSQL): the shop sees one idempotency key per booking, the customer one answer.

Two moments of the crash: while the shop holds its answer to the POST (the call was
made, relaydesk never read the answer: after the restart the run calls again with the
same key, and the shop books once), and after the call's answer was kept on the run,
while the model is writing the reply (after the restart the POST is not made again).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai import FakeOpenAI
from tests.fakes.shop import Shop
from tests.processes import Deployment, wait_until

pytestmark = pytest.mark.e2e

BOOK = {
    "name": "book_visit",
    "description": "Book a visit at the time the customer asked for",
    "method": "POST",
    "parameters": {
        "type": "object",
        "properties": {"slot": {"type": "string"}},
        "required": ["slot"],
    },
}


class Model:
    """Books the slot the customer named, then confirms it; can hold the confirmation."""

    def __init__(self) -> None:
        self.fake = FakeOpenAI()
        self.hold_reply = False
        self.replying = threading.Event()  # a confirmation is being asked for
        self.release = threading.Event()
        self.fake.reply_with(self.reply)

    def reply(self, body: dict[str, Any]) -> Any:
        results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
        said = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        if not results:
            return {"tool_calls": [{"name": "book_visit", "arguments": {"slot": said}}]}
        if self.hold_reply:
            self.replying.set()
            self.release.wait(60)
        return f"Zarezerwowane. {results[-1]}"


@pytest.fixture
def model() -> Iterator[Model]:
    running = Model()
    running.fake.start()
    yield running
    running.release.set()
    running.fake.stop()


def answers_for(deployment: Deployment, number: str) -> list[Any]:
    return [m for m in deployment.emulator_messages() if str(m.to) == number]


def test_a_kill_around_a_tool_call_books_once_and_answers_once(
    tmp_path: Path, model: Model
) -> None:
    deployment = Deployment(
        tmp_path,
        AUTOMATION_LEASE_SECONDS="2",
        TOOLS_ALLOW_PRIVATE_NETWORKS="true",
        LLM_ALLOW_PRIVATE_NETWORKS="true",
    )
    with Shop() as shop:
        try:
            deployment.start()
            deployment.answer_with_ai(model.fake.base_url)
            with deployment.admin_client() as api:
                tool = {**BOOK, "url": f"{shop.base}/api/bookings"}
                assert api.post("/api/ai/tools", json=tool).status_code == 201

            # 1. Killed while the shop holds its answer to the booking.
            shop.hold_bookings = True
            deployment.customer_writes("+48600600001", "wtorek 10:00")
            wait_until(shop.booking_arrived.is_set, 60, "the booking to reach the shop", deployment)
            deployment.kill()
            shop.release.set()  # the shop answers a process that is gone
            shop.hold_bookings = False
            deployment.start()
            wait_until(
                lambda: answers_for(deployment, "+48600600001"),
                60,
                "the answer after the restart",
                deployment,
            )
            first = [s for s in shop.seen if s[4] == {"slot": "wtorek 10:00"}]
            assert len(first) == 2  # asked again after the crash...
            keys = {s[3]["idempotency-key"] for s in first}
            assert len(keys) == 1 and shop.bookings[keys.pop()] == 2  # ...with the same key

            # 2. Killed after the call's answer was kept, while the model writes the reply.
            model.hold_reply = True
            deployment.customer_writes("+48600600002", "środa 12:00")
            wait_until(model.replying.is_set, 60, "the model to be asked to reply", deployment)
            deployment.kill()
            model.hold_reply = False
            model.release.set()
            deployment.start()
            wait_until(
                lambda: answers_for(deployment, "+48600600002"),
                60,
                "the second answer after the restart",
                deployment,
            )
            second = [s for s in shop.seen if s[4] == {"slot": "środa 12:00"}]
            assert len(second) == 1  # the kept call was not made again

            with deployment.admin_client("tools-reader") as api:
                runs = api.get("/api/automation/runs").json()
            replies = {n: answers_for(deployment, n) for n in ("+48600600001", "+48600600002")}
        finally:
            deployment.stop()

    assert {n: len(found) for n, found in replies.items()} == {
        "+48600600001": 1,
        "+48600600002": 1,
    }
    assert all("Zarezerwowane" in str(found[0].body) for found in replies.values())
    calls = [c for r in runs for c in r["tool_calls"] or []]
    assert [(c["name"], c["status"]) for c in calls] == [("book_visit", 201)] * 2
