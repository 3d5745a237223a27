"""Embedders: OpenAI's API (against a fake server on loopback) and the local model."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from relaydesk.ai.providers import LLMError, LLMNotConfigured
from relaydesk.core.config import Settings, load_settings
from relaydesk.knowledge import embeddings, indexing, search, store
from relaydesk.knowledge.embeddings import (
    E5Embedder,
    LocalEmbedder,
    OpenAIEmbedder,
    get_embedder,
)
from tests.fakes import FakeOpenAI
from tests.fakes import openai_fake as openai_fake  # the fixture, for pytest to find
from tests.knowledge.conftest import DOCS

KEY = "sk-test-embeddings-0123456789"


def openai_for(
    fake: FakeOpenAI, model: str = "text-embedding-3-small", dimensions: int | None = None
) -> OpenAIEmbedder:
    return OpenAIEmbedder(
        model, api_key=KEY, base_url=fake.base_url, dimensions=dimensions, backoff_seconds=0
    )


def unit_rows(vectors: np.ndarray) -> bool:
    return bool(np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5))


def test_openai_vectors_have_the_model_size_and_unit_length(openai_fake: FakeOpenAI) -> None:
    openai_fake.api_key = KEY
    vectors = openai_for(openai_fake).embed(["rye bread", "interest rates"])
    assert vectors.shape == (2, 1536) and vectors.dtype == np.float32
    assert unit_rows(vectors)
    [request] = openai_fake.requests
    assert request["model"] == "text-embedding-3-small"
    assert request["input"] == ["rye bread", "interest rates"]
    assert request["encoding_format"] == "float"
    assert "dimensions" not in request
    assert openai_fake.headers[0]["authorization"] == f"Bearer {KEY}"


def test_the_large_model_and_shortened_vectors(openai_fake: FakeOpenAI) -> None:
    large = openai_for(openai_fake, "text-embedding-3-large")
    assert large.dimension == 3072 and large.embed(["x"]).shape == (1, 3072)
    short = openai_for(openai_fake, "text-embedding-3-large", dimensions=256)
    assert short.dimension == 256 and short.embed(["x"]).shape == (1, 256)
    assert openai_fake.requests[-1]["dimensions"] == 256


def test_the_size_of_another_model_is_asked_of_the_server(openai_fake: FakeOpenAI) -> None:
    embedder = openai_for(openai_fake, "nomic-embed-text")
    assert embedder.dimension == 768
    assert embedder.embed(["a", "b"]).shape == (2, 768)


def test_many_texts_go_in_batches_of_at_most_2048(openai_fake: FakeOpenAI) -> None:
    texts = [f"text number {i}" for i in range(2500)]
    vectors = openai_for(openai_fake, dimensions=8).embed(texts)
    assert vectors.shape == (2500, 8)
    assert [len(r["input"]) for r in openai_fake.requests] == [2048, 452]
    # Rows come back in the order of the texts.
    again = openai_for(openai_fake, dimensions=8).embed(texts[2047:2049])
    assert np.allclose(again, vectors[2047:2049])


def test_long_texts_split_batches_by_size(
    openai_fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embeddings, "OPENAI_MAX_BATCH_CHARS", 1000)
    openai_for(openai_fake, dimensions=8).embed(["word " * 80] * 5)  # 400 characters each
    assert [len(r["input"]) for r in openai_fake.requests] == [2, 2, 1]


def test_transient_errors_are_retried(openai_fake: FakeOpenAI) -> None:
    openai_fake.fail_next(503)
    assert openai_for(openai_fake).embed(["x"]).shape == (1, 1536)
    assert len(openai_fake.requests) == 2


def test_a_rejected_key_is_a_clear_error_without_the_key(openai_fake: FakeOpenAI) -> None:
    openai_fake.api_key = "sk-another-key"
    with pytest.raises(LLMError) as failed:
        openai_for(openai_fake).embed(["x"])
    assert "rejected the API key (401)" in failed.value.message
    assert KEY not in failed.value.message and not failed.value.transient
    assert KEY not in repr(openai_for(openai_fake))


def test_an_unknown_model_is_reported(openai_fake: FakeOpenAI) -> None:
    openai_fake.models = ("text-embedding-3-small",)
    with pytest.raises(LLMError, match="'text-embedding-3-large' does not exist"):
        openai_for(openai_fake, "text-embedding-3-large").embed(["x"])


def test_no_key_and_no_server_is_not_configured() -> None:
    with pytest.raises(LLMNotConfigured, match="OPENAI_API_KEY"):
        OpenAIEmbedder().embed(["x"])


def test_an_index_built_through_openai_answers_questions(
    openai_fake: FakeOpenAI, tmp_path: Path
) -> None:
    embedder = openai_for(openai_fake)
    indexing.build(tmp_path, "news", DOCS, embedder)
    index = store.load(tmp_path, "news")
    assert index.manifest.provider == "openai" and index.manifest.dimension == 1536
    hits = search.search_text(index, embedder, "storm warning ferries", top_k=1)
    assert hits[0].chunk.url == "https://news.example/weather"


def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> Settings:
    for key in ("EMBEDDING_PROVIDER", "EMBEDDING_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return load_settings()


def test_the_local_model_is_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    embedder = get_embedder(settings(monkeypatch, tmp_path))
    assert isinstance(embedder, E5Embedder)
    assert (embedder.provider, embedder.model, embedder.dimension) == (
        "local",
        "multilingual-e5-small",
        384,
    )
    # The earlier local model stays available by name (with the local-embeddings extra).
    named = get_embedder(settings(monkeypatch, tmp_path, EMBEDDING_MODEL="all-MiniLM-L6-v2"))
    assert isinstance(named, LocalEmbedder) and named.model == "all-MiniLM-L6-v2"


POLISH_PASSAGES = [
    "Piekarnia jest otwarta od poniedziałku do piątku w godzinach 7-18, w soboty 8-14.",
    "Cena chleba żytniego to 8 zł, bułki kosztują 1,20 zł za sztukę.",
    "Zamówienia na torty przyjmujemy z trzydniowym wyprzedzeniem.",
    "Dostawa do domu jest bezpłatna przy zamówieniu powyżej 100 zł.",
]
POLISH_QUESTIONS = {
    "Ile kosztuje chleb?": 1,
    "Do której jesteście otwarci w sobotę?": 0,
    "Czy dowozicie zakupy do domu?": 3,
    "Chcę zamówić tort na urodziny": 2,
}


def test_the_default_local_model_matches_polish_questions_to_polish_passages() -> None:
    embedder = E5Embedder()
    passages = embedder.embed(POLISH_PASSAGES)
    assert passages.shape == (4, 384) and passages.dtype == np.float32 and unit_rows(passages)
    for question, best in POLISH_QUESTIONS.items():
        query = embedder.embed_query(question)
        assert query.shape == (384,)
        assert int(np.argmax(passages @ query)) == best, question


def test_the_default_local_model_is_shared_safely_between_threads() -> None:
    texts = [f"zdanie o temacie numer {i}" for i in range(24)]
    expected = E5Embedder().embed(texts)
    results: list[np.ndarray] = []

    def work() -> None:
        results.append(E5Embedder().embed(texts))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3
    assert all(np.allclose(r, expected, atol=1e-5) for r in results)


def test_openai_is_chosen_by_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, openai_fake: FakeOpenAI
) -> None:
    env = settings(
        monkeypatch,
        tmp_path,
        EMBEDDING_PROVIDER="openai",
        EMBEDDING_MODEL="text-embedding-3-large",
        OPENAI_API_KEY=KEY,
        OPENAI_BASE_URL=openai_fake.base_url,
    )
    embedder = get_embedder(env, api_key="sk-from-the-panel", base_url="https://ignored/v1")
    assert (embedder.provider, embedder.model, embedder.dimension) == (
        "openai",
        "text-embedding-3-large",
        3072,
    )
    embedder.embed(["x"])
    assert openai_fake.headers[0]["authorization"] == f"Bearer {KEY}"  # the environment's


def test_a_private_server_from_the_panel_is_refused_unless_allowed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, openai_fake: FakeOpenAI
) -> None:
    closed = settings(
        monkeypatch, tmp_path, EMBEDDING_PROVIDER="openai", LLM_ALLOW_PRIVATE_NETWORKS="false"
    )
    with pytest.raises(LLMNotConfigured, match="LLM_ALLOW_PRIVATE_NETWORKS"):
        get_embedder(closed, api_key=KEY, base_url=openai_fake.base_url)
    opened = settings(
        monkeypatch, tmp_path, EMBEDDING_PROVIDER="openai", LLM_ALLOW_PRIVATE_NETWORKS="true"
    )
    embedder = get_embedder(opened, api_key=KEY, base_url=openai_fake.base_url)
    assert embedder.embed(["x"]).shape == (1, 1536)


def test_the_local_model_gives_unit_vectors_with_meaning(local_embedder: LocalEmbedder) -> None:
    vectors = local_embedder.embed(["fresh rye bread", "a loaf of sourdough", "interest rates"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32 and unit_rows(vectors)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_the_local_model_is_shared_safely_between_threads(
    local_embedder: LocalEmbedder,
) -> None:
    texts = [f"sentence about topic {i}" for i in range(40)]
    expected = local_embedder.embed(texts)
    results: list[np.ndarray] = []

    def work() -> None:
        results.append(LocalEmbedder().embed(texts))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert all(np.allclose(r, expected, atol=1e-5) for r in results)


def test_a_local_model_that_is_not_on_disk_is_not_downloaded(tmp_path: Path) -> None:
    with pytest.raises(LLMNotConfigured, match="nothing is downloaded"):
        LocalEmbedder("sentence-transformers/paraphrase-MiniLM-L3-v2").embed(["x"])
    with pytest.raises(LLMNotConfigured, match="nothing is downloaded"):
        LocalEmbedder(str(tmp_path)).embed(["x"])


def test_the_fake_answers_the_sdk_default_base64_like_floats(openai_fake: FakeOpenAI) -> None:
    import openai

    client = openai.OpenAI(api_key=KEY, base_url=openai_fake.base_url, max_retries=0)
    packed = client.embeddings.create(model="text-embedding-3-small", input=["rye bread"])
    floats = openai_for(openai_fake).embed(["rye bread"])
    assert openai_fake.requests[0]["encoding_format"] == "base64"
    assert np.allclose(np.asarray(packed.data[0].embedding, dtype=np.float32), floats[0])
