"""AI answers grounded on a knowledge index: the passages reach the model and are recorded."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from relaydesk.core.config import get_settings
from relaydesk.knowledge import indexing, store
from relaydesk.knowledge.embeddings import get_embedder
from tests.automation.conftest import finished
from tests.fakes import FakeOpenAI

Inbound = Callable[..., str]

DOCUMENTS = [
    indexing.Document(
        url="https://bakery.example/hours",
        title="Opening hours",
        category="faq",
        text="The bakery on Długa street is open Monday to Saturday from 6:30 to 18:00. "
        "On Sundays we open at 8:00 and close at 13:00.",
    ),
    indexing.Document(
        url="https://bakery.example/cakes",
        title="Wedding cakes",
        category="faq",
        text="Wedding cakes are ordered at least three weeks ahead; a tasting costs 60 zł "
        "and is deducted from the cake's price.",
    ),
    indexing.Document(
        url="https://bakery.example/delivery",
        title="Delivery",
        category="faq",
        text="We deliver bread within Gdańsk before 7:00 for orders placed by 20:00 the day "
        "before; delivery is free above 50 zł.",
    ),
]


@pytest.fixture
def knowledge(server: Any) -> Iterator[str]:
    """A small index called 'bakery' in the server's data directory (removed after)."""
    root = get_settings().data_dir / "indexes"
    indexing.build(root, "bakery", DOCUMENTS, get_embedder(get_settings()))
    yield "bakery"
    with contextlib.suppress(store.IndexNotFound):  # a test may have deleted it
        store.delete(root, "bakery")


def test_ai_answers_from_the_best_passages_and_records_them(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    ai_on: Callable[..., Any],
    openai_fake: FakeOpenAI,
    knowledge: str,
    panel: Callable[[str], httpx.Client],
) -> None:
    config = ai_on(knowledge_index=knowledge)
    assert config["knowledge_index"] == "bakery"
    customer = "+48600200081"
    sid = inbound(customer, "How far ahead do I need to order a wedding cake?")
    run = finished(db, sid)
    assert run.outcome == "ai", run.detail

    system = openai_fake.requests[-1]["messages"][0]["content"]
    assert "three weeks ahead" in system  # the passage that answers it reached the model
    assert run.knowledge is not None
    assert run.knowledge[0]["url"] == "https://bakery.example/cakes"
    assert all("text" not in p for p in run.knowledge)

    runs = api.get("/api/automation/runs", params={"participant": customer}).json()
    assert runs[0]["knowledge"][0]["title"] == "Wedding cakes"
    chat = panel("viewer").get(f"/chat/{customer}")
    assert chat.status_code == 200
    assert "Based on" in chat.text and "https://bakery.example/cakes" in chat.text


def test_an_unknown_index_is_refused_and_a_missing_one_leaves_answers_ungrounded(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    ai_on: Callable[..., Any],
    openai_fake: FakeOpenAI,
    knowledge: str,
) -> None:
    ai_on()
    refused = api.put("/api/ai/config", json={"knowledge_index": "nope"})
    assert refused.status_code == 422
    assert "no knowledge index called 'nope'" in refused.json()["detail"]

    ai_on(knowledge_index=knowledge)
    store.delete(get_settings().data_dir / "indexes", knowledge)  # gone after it was chosen
    sid = inbound("+48600200082", "Are you open on Sunday?")
    run = finished(db, sid)
    assert run.outcome == "ai"
    assert run.detail is not None and "answered without knowledge" in run.detail
    assert not run.knowledge


def test_an_assistant_names_its_own_index(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    ai_on: Callable[..., Any],
    openai_fake: FakeOpenAI,
    knowledge: str,
) -> None:
    ai_on(enabled=False)
    made = api.post("/api/assistants", json={"name": "Bakery", "knowledge_index": knowledge})
    assert made.status_code == 201, made.text
    assert made.json()["knowledge_index"] == "bakery"
    bad = api.post("/api/assistants", json={"name": "Other", "knowledge_index": "missing"})
    assert bad.status_code == 422
    bound = api.post(
        "/api/phone-numbers", json={"number": "+15005550006", "assistant_id": made.json()["id"]}
    )
    assert bound.status_code == 201, bound.text
    sid = inbound("+48600200083", "Do you deliver bread in the morning?", to="+15005550006")
    run = finished(db, sid)
    assert run.outcome == "assistant", run.detail
    assert run.knowledge is not None
    assert run.knowledge[0]["url"] == "https://bakery.example/delivery"
