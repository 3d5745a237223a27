"""indexes.retrieval as the digests and grounded replies call it (in the live server's process)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from relaydesk.core.errors import Conflict, NotFound, ProviderFailed
from relaydesk.indexes import retrieval, service
from relaydesk.knowledge import indexing, store
from relaydesk.knowledge.embeddings import E5Embedder
from tests.conftest import LiveServer
from tests.fakes import FakeOpenAI
from tests.news.live import wipe_news_data

DOCUMENTS = [
    indexing.Document(
        "https://news.example/harbour",
        "Harbour crane arrives",
        "economy",
        "A new container crane arrived at the harbour on a barge from Rotterdam; it lifts "
        "forty tonnes and will double the number of ships unloaded each day.",
    ),
    indexing.Document(
        "https://news.example/library",
        "City library opens at night",
        "culture",
        "The city library will stay open until midnight on Fridays from next month, so "
        "that students can read and study after their evening classes.",
    ),
    indexing.Document(
        "https://news.example/ferry",
        "Ferry timetable changes",
        "economy",
        "The ferry to the island will leave every forty minutes instead of every hour "
        "during the summer season, the shipping company said.",
    ),
]


@pytest.fixture
def indexed(server: LiveServer) -> Iterator[None]:
    """An index 'main' (active) and an index 'other', built from DOCUMENTS."""
    wipe_news_data()
    root = service.index_root()
    indexing.build(root, "main", DOCUMENTS, E5Embedder())
    indexing.build(root, "other", DOCUMENTS[:1], E5Embedder())
    store.activate(root, "main")
    yield
    wipe_news_data()


@pytest.fixture
def wiped(server: LiveServer) -> Iterator[None]:
    """No news data before or after the test."""
    wipe_news_data()
    yield
    wipe_news_data()


def use_model(api: httpx.Client, fake: FakeOpenAI) -> None:
    config = {"provider": "openai", "model": "gpt-4o-mini", "base_url": fake.base_url}
    assert api.put("/api/ai/config", json=config).status_code == 200


def test_search_needs_an_index_and_an_active_one(wiped: None) -> None:
    with pytest.raises(Conflict, match="no knowledge index yet"):
        retrieval.search("harbour crane")
    indexing.build(service.index_root(), "spare", DOCUMENTS, E5Embedder())
    with pytest.raises(Conflict, match="No knowledge index is active"):
        retrieval.search("harbour crane")
    with pytest.raises(NotFound, match="no index named 'missing'"):
        retrieval.search("harbour crane", index="missing")
    assert retrieval.search("harbour crane", index="spare")[0].title == "Harbour crane arrives"


def test_search_ranks_filters_by_category_and_reads_a_named_index(indexed: None) -> None:
    found = retrieval.search("When does the ferry leave?", min_score=0.0, top_k=3)
    assert found[0].url == "https://news.example/ferry"
    assert found[0].text.startswith("The ferry to the island")
    assert found[0].excerpt == found[0].text  # short passages are shown whole
    culture = retrieval.search("ferry", category="culture", min_score=0.0)
    assert [p.category for p in culture] == ["culture"]
    assert retrieval.search("ferry", category="sport") == []
    other = retrieval.search("library at night", index="other", min_score=0.0)
    assert {p.url for p in other} == {"https://news.example/harbour"}


def test_the_configured_retrieval_settings_apply_when_none_are_given(
    indexed: None, api: httpx.Client
) -> None:
    answer = api.put("/api/news/settings", json={"retrieval": {"top_k": 2, "min_score": 0.0}})
    assert answer.status_code == 200
    assert len(retrieval.search("ferry harbour library")) == 2
    assert len(retrieval.search("ferry harbour library", top_k=1)) == 1


def test_an_answer_is_asked_to_fit_and_trimmed_to_max_chars(
    indexed: None, api: httpx.Client, openai_fake: FakeOpenAI
) -> None:
    use_model(api, openai_fake)
    long_text = "The ferry leaves every forty minutes. " * 20
    openai_fake.reply_with(lambda body: long_text)
    found = retrieval.answer("How often does the ferry leave?", max_chars=120)
    assert found.answer is not None
    assert len(found.answer) <= 120
    assert found.answer.endswith("minutes.")
    assert found.sources[0].url == "https://news.example/ferry"
    system = openai_fake.requests[-1]["messages"][0]["content"]
    assert "under 120 characters" in system
    assert "language of the question" in system


def test_a_failing_model_still_gives_the_passages_with_a_note(
    indexed: None, api: httpx.Client, openai_fake: FakeOpenAI
) -> None:
    use_model(api, openai_fake)
    openai_fake.fail_next(500, times=10)
    found = retrieval.answer("harbour crane")
    assert found.answer is None
    assert found.model is None
    assert found.note is not None and "could not answer" in found.note
    assert found.sources[0].url == "https://news.example/harbour"


def test_a_summary_takes_the_best_passages_of_every_category(
    indexed: None, api: httpx.Client, openai_fake: FakeOpenAI
) -> None:
    use_model(api, openai_fake)
    found = retrieval.answer("Daily news summary", mode="all_categories", top_k=1)
    assert sorted(p.category for p in found.sources) == ["culture", "economy"]
    assert found.answer is not None and found.answer.startswith("Echo: ")


def test_an_embedding_provider_that_fails_is_a_provider_error(
    indexed: None, api: httpx.Client, openai_fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relaydesk.core.config import get_settings

    settings = get_settings()
    monkeypatch.setattr(settings, "embedding_provider", "openai")
    monkeypatch.setattr(settings, "embedding_model", "all-MiniLM-L6-v2")
    monkeypatch.setattr(settings, "openai_base_url", openai_fake.base_url)
    openai_fake.fail_next(400, times=5)
    with pytest.raises(ProviderFailed, match="embedding model could not be used"):
        retrieval.search("harbour")


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("Short.", 50, "Short."),
        ("First sentence here. Second one is longer than the limit.", 30, "First sentence here."),
        ("one two three four five six seven", 15, "one two three…"),
    ],
)
def test_trim_chars_cuts_at_a_sentence_or_a_word(text: str, limit: int, expected: str) -> None:
    assert retrieval.trim_chars(text, limit) == expected
    assert len(retrieval.trim_chars(text, limit)) <= limit
