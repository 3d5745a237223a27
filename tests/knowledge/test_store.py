"""Named indexes: build with the real local model, search, rebuild incrementally, swap safely."""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from relaydesk.ai.providers import LLMError
from relaydesk.core.errors import Invalid
from relaydesk.knowledge import indexing, search, store
from relaydesk.knowledge.embeddings import LocalEmbedder
from relaydesk.knowledge.indexing import Document
from tests.knowledge.conftest import DOCS, CountingEmbedder


def urls(hits: list[search.Hit]) -> list[str]:
    return [hit.chunk.url for hit in hits]


def leftovers(root: Path) -> list[str]:
    """Work directories a build or import should not leave behind."""
    return [p.name for p in root.iterdir() if p.is_dir() and p.name.startswith(".")]


@pytest.fixture
def news(root: Path, local_embedder: LocalEmbedder) -> store.LoadedIndex:
    """The four documents indexed as 'news'."""
    indexing.build(root, "news", DOCS, local_embedder)
    return store.load(root, "news")


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("When does the new bakery shop open and what bread does it sell?", "bakery"),
        ("What was the score of the derby?", "football"),
        ("Did the central bank change the interest rate?", "rates"),
        ("Are the ferries running on Thursday?", "weather"),
    ],
)
def test_a_question_finds_the_one_document_that_answers_it(
    news: store.LoadedIndex, local_embedder: LocalEmbedder, question: str, answer: str
) -> None:
    hits = search.search_text(news, local_embedder, question, top_k=4)
    assert hits[0].chunk.url == f"https://news.example/{answer}"
    assert hits[0].score > 0.3
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_hits_carry_the_source_of_the_passage(
    news: store.LoadedIndex, local_embedder: LocalEmbedder
) -> None:
    [hit] = search.search_text(news, local_embedder, "poppy seed rolls", top_k=1)
    assert hit.chunk.title == "Bakery opens a second shop"
    assert hit.chunk.category == "local"
    assert hit.chunk.published == "2026-03-02"
    assert "poppy seed rolls" in hit.chunk.text


def test_a_category_filter_searches_only_that_category(
    news: store.LoadedIndex, local_embedder: LocalEmbedder
) -> None:
    hits = search.search_text(
        news, local_embedder, "interest rates", top_k=4, min_score=-1, category="local"
    )
    assert set(urls(hits)) == {"https://news.example/bakery", "https://news.example/weather"}
    assert search.search_text(news, local_embedder, "rates", category="no-such") == []
    assert news.categories == ["economy", "local", "sport"]


def test_min_score_and_top_k_limit_the_hits(
    news: store.LoadedIndex, local_embedder: LocalEmbedder
) -> None:
    assert len(search.search_text(news, local_embedder, "storm", top_k=2, min_score=-1)) == 2
    strict = search.search_text(news, local_embedder, "storm warning wind", min_score=0.5)
    assert urls(strict) == ["https://news.example/weather"]
    with pytest.raises(Invalid):
        search.search_text(news, local_embedder, "storm", top_k=0)
    with pytest.raises(Invalid):
        search.search_text(news, local_embedder, "   ")


def test_a_rebuild_embeds_only_new_and_changed_documents(
    root: Path, local_embedder: LocalEmbedder
) -> None:
    counting = CountingEmbedder(local_embedder)
    first = indexing.build(root, "news", DOCS, counting)
    assert first.embedded == first.vectors == len(counting.texts) == 4
    counting.texts.clear()

    changed = replace(DOCS[2], text=DOCS[2].text + " Markets had expected a cut.")
    added = Document("https://news.example/concert", "Jazz night", "culture", "A jazz concert.")
    result = indexing.build(root, "news", [DOCS[0], DOCS[1], changed, added], counting)

    assert len(counting.texts) == result.embedded == 2
    assert any("Markets had expected a cut." in text for text in counting.texts)
    assert any("A jazz concert." in text for text in counting.texts)
    assert result.reused == 2 and result.vectors == 4 and result.documents == 4
    index = store.load(root, "news")
    assert "https://news.example/weather" not in {c.url for c in index.chunks}
    hits = search.search_text(index, local_embedder, "Who played jazz?", top_k=1)
    assert urls(hits) == ["https://news.example/concert"]
    # Reused vectors are the very vectors of the first build.
    again = search.search_text(index, local_embedder, "What was the score of the derby?")
    assert again[0].chunk.url == "https://news.example/football"

    counting.texts.clear()
    indexing.build(root, "news", [DOCS[0], DOCS[1], changed, added], counting)
    assert counting.texts == []  # nothing changed: nothing embedded


def test_another_embedding_model_re_embeds_everything(
    root: Path, local_embedder: LocalEmbedder
) -> None:
    indexing.build(root, "news", DOCS, local_embedder)
    other = CountingEmbedder(local_embedder, model="other-model")
    result = indexing.build(root, "news", DOCS, other)
    assert result.reused == 0 and len(other.texts) == 4
    assert store.load(root, "news").manifest.model == "other-model"


def test_searching_with_another_model_is_refused_clearly(
    news: store.LoadedIndex, local_embedder: LocalEmbedder
) -> None:
    with pytest.raises(store.IncompatibleEmbedder) as refused:
        search.search_text(news, CountingEmbedder(local_embedder, model="other-model"), "rye")
    assert "all-MiniLM-L6-v2" in refused.value.message
    assert "other-model" in refused.value.message
    assert "rebuild" in refused.value.message


def test_a_failing_embedder_leaves_the_old_index_answering(
    root: Path, local_embedder: LocalEmbedder
) -> None:
    indexing.build(root, "news", DOCS, local_embedder)
    broken = CountingEmbedder(local_embedder)
    broken.fail_after = 0
    new_docs = [replace(d, text=d.text + " Updated.") for d in DOCS]
    with pytest.raises(LLMError):
        indexing.build(root, "news", new_docs, broken)
    index = store.load(root, "news")
    assert index.vectors == 4
    assert "Updated." not in index.chunks[0].text
    assert leftovers(root) == []


def test_a_failed_swap_puts_the_old_index_back(
    root: Path, local_embedder: LocalEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    indexing.build(root, "news", DOCS, local_embedder)
    before = store.load(root, "news")
    real_replace = os.replace

    def failing_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(src).name.startswith(".build-"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        indexing.build(root, "news", DOCS[:2], local_embedder)
    monkeypatch.undo()

    after = store.load(root, "news")
    assert after is before  # the same files: the cached index is still current
    hits = search.search_text(after, local_embedder, "Are the ferries running on Thursday?")
    assert hits[0].chunk.url == "https://news.example/weather"
    assert leftovers(root) == []


def test_a_crash_between_the_two_renames_is_repaired(
    root: Path, local_embedder: LocalEmbedder
) -> None:
    indexing.build(root, "news", DOCS, local_embedder)
    os.replace(root / "news", root / ".old-news-deadbeef")  # as if the process died here
    assert [i.name for i in store.list_indexes(root)] == ["news"]
    assert store.load(root, "news").vectors == 4


def test_searches_during_rebuilds_always_see_a_whole_index(
    root: Path, local_embedder: LocalEmbedder
) -> None:
    indexing.build(root, "news", DOCS, local_embedder)
    vector = local_embedder.embed(["storm warning for the coast"])[0]
    errors: list[BaseException] = []
    done = threading.Event()

    def searcher() -> None:
        while not done.is_set():
            try:
                hits = search.search(store.load(root, "news"), vector, top_k=1)
                assert hits[0].chunk.url == "https://news.example/weather"
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for n in range(6):
            docs = [*DOCS, Document(f"https://news.example/extra{n}", "Extra", "misc", "Cats.")]
            indexing.build(root, "news", docs, local_embedder)
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert errors == []


def test_progress_counts_up_to_the_chunks_embedded(
    root: Path, local_embedder: LocalEmbedder
) -> None:
    calls: list[tuple[int, int, str]] = []
    indexing.build(root, "news", DOCS, local_embedder, lambda *call: calls.append(call))
    assert calls[-1] == (4, 4, "done")
    embedded = [done for done, total, _ in calls if total == 4]
    assert embedded == sorted(embedded)


def test_a_progress_callback_can_cancel_a_build(root: Path, local_embedder: LocalEmbedder) -> None:
    def cancel(done: int, total: int, message: str) -> None:
        if total:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        indexing.build(root, "news", DOCS, local_embedder, cancel)
    assert store.list_indexes(root) == []


def test_duplicates_and_empty_documents_are_skipped(
    root: Path, local_embedder: LocalEmbedder
) -> None:
    docs = [*DOCS, replace(DOCS[0], title="Copy"), Document("https://x/empty", "Empty", "a", " ")]
    result = indexing.build(root, "news", docs, local_embedder)
    assert result.documents == 4 and result.skipped_documents == 2
    with pytest.raises(Invalid, match="nothing to index"):
        indexing.build(root, "empty", [docs[-1]], local_embedder)


@pytest.mark.parametrize("name", ["", "News", "../news", "a/b", ".hidden", "x" * 64, "-x"])
def test_invalid_names_are_refused(root: Path, local_embedder: LocalEmbedder, name: str) -> None:
    with pytest.raises(Invalid):
        indexing.build(root, name, DOCS, local_embedder)
    with pytest.raises(Invalid):
        store.load(root, name)
    assert not root.exists() or store.list_indexes(root) == []


def test_activate_status_and_delete(root: Path, local_embedder: LocalEmbedder) -> None:
    assert store.status(root).active is None
    indexing.build(root, "news", DOCS, local_embedder)
    indexing.build(root, "sport", DOCS[1:2], local_embedder)
    store.activate(root, "news")

    status = store.status(root)
    assert status.active == "news" and status.vectors == 4 and status.backup_ready
    assert status.embedding_model == "all-MiniLM-L6-v2" and status.dimension == 384
    assert status.last_build is not None and not status.loaded
    assert store.load_active(root) is store.load(root, "news")
    assert store.status(root).loaded
    listed = {i.name: i for i in store.list_indexes(root)}
    assert listed["news"].active and not listed["sport"].active
    assert listed["sport"].vectors == 1 and listed["sport"].size_bytes > 0

    store.delete(root, "sport")
    assert store.active_name(root) == "news"
    store.delete(root, "news")
    assert store.active_name(root) is None and store.load_active(root) is None
    assert store.list_indexes(root) == []
    with pytest.raises(store.IndexNotFound):
        store.activate(root, "news")
    with pytest.raises(store.IndexNotFound):
        store.delete(root, "news")


def test_load_is_cached_until_the_index_changes(root: Path, local_embedder: LocalEmbedder) -> None:
    indexing.build(root, "news", DOCS, local_embedder)
    first = store.load(root, "news")
    assert store.load(root, "news") is first
    indexing.build(root, "news", DOCS[:3], local_embedder)
    second = store.load(root, "news")
    assert second is not first and second.vectors == 3


def test_a_damaged_file_is_reported_not_searched(root: Path, local_embedder: LocalEmbedder) -> None:
    indexing.build(root, "news", DOCS, local_embedder)
    store.activate(root, "news")
    chunks = root / "news" / "chunks.json"
    chunks.write_bytes(chunks.read_bytes().replace(b"bakery", b"bakerz"))
    with pytest.raises(store.IndexDamaged, match=r"checksum of chunks\.json"):
        store.load(root, "news")
    # A rebuild repairs it from scratch.
    indexing.build(root, "news", DOCS, local_embedder)
    assert store.load(root, "news").vectors == 4
    (root / "news" / "index.faiss").write_bytes(b"junk")
    status = store.status(root)
    assert not status.backup_ready and status.problem
