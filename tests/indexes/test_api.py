"""The knowledge indexes' API end to end: questions, retrieval settings, backups.

A news site on loopback serves feeds and article pages; the live server scrapes it and
builds the 'news' index once (the news API's routes), then these tests ask it, export
it and import it back.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.fakes import FakeOpenAI
from tests.fakes.news_site import Site
from tests.news.live import (
    QUESTION,
    add_sources,
    allow_loopback,
    audit_actions,
    publish,
    run_job,
    wipe_news_data,
)
from tests.news.live import fresh as fresh  # a fixture


@pytest.fixture(scope="module")
def built(server: LiveServer) -> Iterator[dict[str, str]]:
    """Scrape the loopback site and build the 'news' index once for the tests that ask it."""
    from relaydesk.auth import service as auth
    from relaydesk.core.db import session_scope

    wipe_news_data()
    site = Site()
    with session_scope() as session:
        _, token = auth.create_token(session, "news-setup", "admin", "test")
    client = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    try:
        with pytest.MonkeyPatch.context() as patch:
            allow_loopback(patch)
            add_sources(client, publish(site))
            run_job(client, "/api/news/scrape")
            run_job(client, "/api/news/indices/build", {})
        yield {"lighthouse": site.url("/economy/lighthouse")}
    finally:
        client.close()
        site.close()
        wipe_news_data()


def ask(api: httpx.Client, query: str = QUESTION, **extra: Any) -> dict[str, Any]:
    answer = api.post("/api/news/test-faiss", json={"query": query, **extra})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


# --- Retrieval ---------------------------------------------------------------------------------


def test_without_an_index_a_question_gets_a_clear_conflict(api: httpx.Client, fresh: None) -> None:
    answer = api.post("/api/news/test-faiss", json={"query": QUESTION})
    assert answer.status_code == 409
    assert "no knowledge index yet" in answer.json()["detail"]


def test_the_article_with_the_answer_comes_first_and_without_a_model_passages_are_shown(
    api: httpx.Client, built: dict[str, str]
) -> None:
    result = ask(api)
    assert result["answer"] is None
    assert result["model"] is None
    assert "No language model is configured" in result["note"]
    top = result["sources"][0]
    assert top["url"] == built["lighthouse"]
    assert top["title"] == "Gdynia lighthouse to be repainted"
    assert top["category"] == "economy"
    assert "orange" in top["excerpt"]
    assert all(s["score"] >= 0.25 for s in result["sources"])
    assert [s["score"] for s in result["sources"]] == sorted(
        (s["score"] for s in result["sources"]), reverse=True
    )


def test_retrieval_settings_limit_the_passages(api: httpx.Client, built: dict[str, str]) -> None:
    settings = api.put("/api/news/settings", json={"retrieval": {"top_k": 1, "min_score": 0.0}})
    assert settings.status_code == 200, settings.text
    assert settings.json()["retrieval"] == {"top_k": 1, "min_score": 0.0}
    assert len(ask(api)["sources"]) == 1
    # A question touching all three articles: each one passes a zero threshold.
    broad = "The lighthouse, the price of bread and a low-power chip"
    assert len(ask(api, broad)["sources"]) == 1
    assert len(ask(api, broad, top_k=3)["sources"]) == 3
    strict = ask(api, min_score=0.99)
    assert strict["sources"] == []
    assert "minimum score 0.99" in strict["note"]
    bad = api.put("/api/news/settings", json={"retrieval": {"top_k": 0, "min_score": 2}})
    assert bad.status_code == 422
    assert "top_k" in bad.json()["detail"]
    assert api.post("/api/news/test-faiss", json={"query": ""}).status_code == 422
    long_query = {"query": "x" * 2001}
    assert api.post("/api/news/test-faiss", json=long_query).status_code == 422
    assert "news.settings.update" in audit_actions(api)


def test_with_a_model_configured_the_answer_is_grounded_on_the_passages(
    api: httpx.Client, built: dict[str, str], openai_fake: FakeOpenAI
) -> None:
    config = {"provider": "openai", "model": "gpt-4o-mini", "base_url": openai_fake.base_url}
    assert api.put("/api/ai/config", json=config).status_code == 200
    openai_fake.reply_with(lambda body: "In September, in bright orange.")
    result = ask(api)
    assert result["answer"] == "In September, in bright orange."
    assert result["model"] == "gpt-4o-mini"
    assert result["note"] is None
    assert result["sources"][0]["url"] == built["lighthouse"]
    sent = openai_fake.requests[-1]["messages"]
    assert "only the numbered news passages" in sent[0]["content"]
    assert "repainted bright orange in September" in sent[1]["content"]
    assert sent[1]["content"].endswith(f"Question: {QUESTION}")


def test_all_categories_mode_summarises_every_category(
    api: httpx.Client, built: dict[str, str], openai_fake: FakeOpenAI
) -> None:
    config = {"provider": "openai", "model": "gpt-4o-mini", "base_url": openai_fake.base_url}
    assert api.put("/api/ai/config", json=config).status_code == 200
    result = ask(api, "Summarise today's news", mode="all_categories")
    assert {s["category"] for s in result["sources"]} == {"economy", "tech"}
    prompt = openai_fake.requests[-1]["messages"]
    assert "every category" in prompt[0]["content"]
    assert "Request: Summarise today's news" in prompt[1]["content"]
    assert result["answer"].startswith("Echo: ")


# --- Backups -------------------------------------------------------------------------------------


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_export_then_import_gives_the_same_answers(
    api: httpx.Client, built: dict[str, str]
) -> None:
    before = ask(api)
    exported = api.get("/api/news/faiss/export")
    assert exported.status_code == 200
    assert exported.headers["content-type"] == "application/zip"
    assert "relaydesk-index-news-" in exported.headers["content-disposition"]
    assert sorted(zipfile.ZipFile(io.BytesIO(exported.content)).namelist()) == [
        "chunks.json",
        "index.faiss",
        "manifest.json",
    ]
    imported = api.post(
        "/api/news/faiss/import",
        files={"file": ("backup.zip", exported.content, "application/zip")},
        data={"name": "restored", "activate": "true"},
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["active"] is True
    assert api.get("/api/news/faiss/status").json()["active_index"] == "restored"
    after = ask(api)
    assert [(s["url"], s["score"]) for s in after["sources"]] == [
        (s["url"], s["score"]) for s in before["sources"]
    ]
    assert api.post("/api/news/indices/news/activate").status_code == 200
    assert api.delete("/api/news/indices/restored").status_code == 204
    assert api.delete("/api/news/indices/restored").status_code == 404
    assert {"news.index.import", "news.index.activate", "news.index.delete"} <= set(
        audit_actions(api)
    )


def test_malicious_or_oversize_backups_are_refused_and_the_old_index_still_answers(
    api: httpx.Client, built: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = api.get("/api/news/indices").json()
    traversal = _zip({"../../etc/cron.d/evil": b"* * * * * root true"})
    unknown = _zip({"manifest.json": b"{}", "run.sh": b"#!/bin/sh"})
    cases = [
        (traversal, 422, "leads out of its folder"),
        (unknown, 422, "unknown file"),
        (b"this is not a zip file", 422, "not a ZIP archive"),
        (b"", 422, "empty"),
    ]
    for content, status, message in cases:
        answer = api.post(
            "/api/news/faiss/import", files={"file": ("b.zip", content, "application/zip")}
        )
        assert answer.status_code == status, answer.text
        assert "This backup was refused" in answer.json()["detail"]
        assert message in answer.json()["detail"]

    from relaydesk.indexes import service as indexes

    monkeypatch.setattr(indexes, "MAX_IMPORT_BYTES", 1000)
    exported = api.get("/api/news/faiss/export").content
    too_big = api.post(
        "/api/news/faiss/import",
        files={"file": ("b.zip", exported, "application/zip")},
        data={"name": "news"},
    )
    assert too_big.status_code == 413
    assert "larger than 1000 bytes" in too_big.json()["detail"]

    assert api.get("/api/news/indices").json() == before
    assert ask(api)["sources"][0]["url"] == built["lighthouse"]


def test_exporting_an_unknown_index_is_not_found(api: httpx.Client, built: dict[str, str]) -> None:
    assert api.get("/api/news/faiss/export", params={"name": "nothing"}).status_code == 404
    assert api.post("/api/news/indices/nothing/activate").status_code == 404
