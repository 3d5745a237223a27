"""The news API end to end: sources, scraping and building as jobs, files, roles, schedule.

A news site on loopback serves feeds and article pages; the live server scrapes it
(private networks allowed per test) and builds an index with the real local embedder.
Questions and backups of that index are tests/indexes/test_api.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.fakes.news_site import Site, rss
from tests.news.live import (
    QUESTION,
    add_sources,
    audit_actions,
    finished_job,
    page,
    publish,
    run_job,
    wipe_news_data,
)
from tests.news.live import fresh as fresh  # a fixture

# --- Sources ---------------------------------------------------------------------------------


def test_sources_are_grouped_by_category_validated_and_audited(api: httpx.Client) -> None:
    first = api.post(
        "/api/news/sources",
        json={"category": "Poradnik Finansowy", "url": "https://example.com/rss"},
    )
    assert first.status_code == 201, first.text
    assert first.json()["category"] == "poradnik_finansowy"
    page = api.post(
        "/api/news/sources",
        json={"category": "poradnik finansowy", "url": "https://example.com/money", "kind": "page"},
    )
    assert page.status_code == 201
    # The same feed again, only with a tracking parameter: the same source.
    again = api.post(
        "/api/news/sources",
        json={"category": "Poradnik Finansowy", "url": "https://example.com/rss?utm_source=x"},
    )
    assert again.status_code == 409
    assert "already has the source" in again.json()["detail"]

    groups = api.get("/api/news/sources").json()
    assert [(g["category"], g["label"]) for g in groups] == [
        ("poradnik_finansowy", "Poradnik Finansowy")
    ]
    assert [(s["url"], s["kind"]) for s in groups[0]["sources"]] == [
        ("https://example.com/rss", "feed"),
        ("https://example.com/money", "page"),
    ]

    deleted = api.delete(f"/api/news/sources/{first.json()['id']}")
    assert deleted.status_code == 204
    assert api.delete(f"/api/news/sources/{first.json()['id']}").status_code == 404
    assert audit_actions(api)[:3] == [
        "news.source.delete",
        "news.source.create",
        "news.source.create",
    ]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"category": "Biz", "url": "ftp://example.com/feed"}, "must start with http"),
        ({"category": "Biz", "url": "https://user:pw@example.com/"}, "user name or password"),
        ({"category": "Biz", "url": "not a url"}, "spaces"),
        ({"category": "Biz?!", "url": "https://example.com/"}, "may contain only"),
        ({"category": "Biz", "url": "https://example.com/", "kind": "video"}, "kind"),
        ({"category": "", "url": "https://example.com/"}, "category"),
    ],
)
def test_bad_sources_are_refused_with_a_reason(
    api: httpx.Client, payload: dict[str, str], message: str
) -> None:
    answer = api.post("/api/news/sources", json=payload)
    assert answer.status_code == 422
    assert message in answer.json()["detail"]
    assert api.get("/api/news/sources").json() == []


def test_scraping_without_sources_or_with_an_unknown_category_is_refused(
    api: httpx.Client,
) -> None:
    nothing = api.post("/api/news/scrape")
    assert nothing.status_code == 422
    assert "no news sources yet" in nothing.json()["detail"]
    api.post("/api/news/sources", json={"category": "Tech", "url": "https://example.com/rss"})
    unknown = api.post("/api/news/scrape", json={"categories": ["sport"]})
    assert unknown.status_code == 422
    assert "'sport'" in unknown.json()["detail"]


def test_roles_viewers_read_operators_run_admins_delete(
    api: httpx.Client, make_token: Callable[[str], str], server: LiveServer
) -> None:
    def as_role(role: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {make_token(role)}"}
        return httpx.Client(base_url=server.url, headers=headers, timeout=30)

    source = {"category": "Tech", "url": "https://example.com/rss"}
    with as_role("viewer") as viewer, as_role("operator") as operator:
        for path in ("/api/news/sources", "/api/news/files", "/api/news/indices"):
            assert viewer.get(path).status_code == 200
        assert viewer.get("/api/news/faiss/status").status_code == 200
        assert viewer.post("/api/news/scrape").status_code == 403
        assert viewer.post("/api/news/sources", json=source).status_code == 403
        assert viewer.post("/api/news/indices/build", json={}).status_code == 403
        assert viewer.post("/api/news/test-faiss", json={"query": "x"}).status_code == 403
        assert viewer.put("/api/news/settings", json={}).status_code == 403
        assert operator.post("/api/news/sources", json=source).status_code == 201
        assert operator.delete("/api/news/files").status_code == 403
        assert operator.delete("/api/news/files/tech.txt").status_code == 403
        assert operator.delete("/api/news/indices/news").status_code == 403
        upload = {"file": ("b.zip", b"PK", "application/zip")}
        assert operator.post("/api/news/faiss/import", files=upload).status_code == 403


def test_loopback_sources_are_refused_with_the_default_setting(
    api: httpx.Client, site: Site
) -> None:
    wipe_news_data()  # and no allow_loopback: the deployment's default holds
    add_sources(api, publish(site))
    job = run_job(api, "/api/news/scrape")
    assert job["result"]["new"] == 0
    reasons = [p["reason"] for p in job["result"]["problems"]]
    assert reasons and all("SCRAPER_ALLOW_PRIVATE_NETWORKS" in r for r in reasons), reasons
    assert site.requested("/economy.rss") == 0
    assert api.get("/api/news/files").json() == []


# --- Scrape, files and build ------------------------------------------------------------------


def test_scrape_saves_category_files_and_a_rebuild_reuses_vectors(
    api: httpx.Client, site: Site, fresh: None
) -> None:
    add_sources(api, publish(site))
    scraped = run_job(api, "/api/news/scrape")
    assert scraped["result"]["new"] == 3
    assert scraped["percent"] == 100.0
    files = {f["name"]: f for f in api.get("/api/news/files").json()}
    assert sorted(files) == ["economy.json", "economy.txt", "tech.json", "tech.txt"]
    assert all(f["size"] > 0 for f in files.values())

    text = api.get("/api/news/files/economy.txt")
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert "=== Gdynia lighthouse to be repainted |" in text.text
    metadata = api.get("/api/news/files/tech.json")
    assert metadata.headers["content-type"] == "application/json"
    assert [a["title"] for a in metadata.json()] == ["Startup unveils a low-power chip"]
    assert api.get("/api/news/files/sport.txt").status_code == 404
    assert api.get("/api/news/files/..%2Fapp.db").status_code in (404, 422)

    # The fetch updated the index it feeds: 'news', the first one, made active.
    first = scraped["result"]["index"]
    assert first["name"] == "news"
    assert first["documents"] == 3
    assert first["embedded"] == first["vectors"] > 0
    assert first["activated"] is True
    again = run_job(api, "/api/news/indices/build", {"name": "news"})["result"]
    assert (again["embedded"], again["reused"]) == (0, first["vectors"])
    assert again["activated"] is False

    status = api.get("/api/news/faiss/status").json()
    assert status["active_index"] == "news"
    assert status["loaded"] is True
    assert status["vectors"] == first["vectors"]
    assert status["embedding_model"] == "multilingual-e5-small"
    assert status["backup_ready"] is True
    assert status["last_build"]
    assert status["chat_model"].startswith("openai · ")
    assert [i["name"] for i in api.get("/api/news/indices").json()] == ["news"]

    assert api.delete("/api/news/files/tech.json").status_code == 204
    deleted = api.delete("/api/news/files").json()["deleted"]
    assert sorted(deleted) == ["economy.json", "economy.txt", "tech.txt"]
    assert {"news.scrape.start", "news.index.build", "news.file.delete_all"} <= set(
        audit_actions(api)
    )


def test_a_fetch_updates_the_index_so_the_next_question_reads_the_new_article(
    api: httpx.Client, site: Site, fresh: None
) -> None:
    add_sources(api, publish(site))
    first = run_job(api, "/api/news/scrape")["result"]["index"]
    asked = api.post("/api/news/test-faiss", json={"query": QUESTION}).json()
    assert asked["sources"][0]["title"] == "Gdynia lighthouse to be repainted"

    # A new article appears in the economy feed; one fetch, no build.
    site.serve(
        "/economy/ferry",
        page(
            "Night ferry to Karlskrona returns",
            [
                "The night ferry from Gdynia to Karlskrona returns on 3 November and will "
                "leave the harbour at 21:00 every day except Sunday.",
                "Tickets for a cabin cost 240 zloty; a place for a bicycle is free.",
            ],
        ),
    )
    site.serve(
        "/economy.rss",
        rss(
            ("Night ferry to Karlskrona returns", site.url("/economy/ferry")),
            ("Gdynia lighthouse to be repainted", site.url("/economy/lighthouse")),
            ("Bakeries raise bread prices", site.url("/economy/bakery")),
        ),
        "application/rss+xml",
    )
    fetched = run_job(api, "/api/news/scrape", {"categories": ["Economy"]})["result"]
    assert fetched["new"] == 1
    index = fetched["index"]
    assert index["documents"] == 4 and index["activated"] is False
    assert 0 < index["embedded"] < index["vectors"]  # only the new passages
    assert index["reused"] == first["vectors"]
    ferry = api.post(
        "/api/news/test-faiss", json={"query": "When does the night ferry to Karlskrona leave?"}
    ).json()
    assert ferry["sources"][0]["title"] == "Night ferry to Karlskrona returns"


def test_a_fetch_can_leave_the_index_alone_and_says_why_it_did(
    api: httpx.Client, site: Site, fresh: None
) -> None:
    add_sources(api, publish(site))
    only = run_job(api, "/api/news/scrape", {"build": False})["result"]
    assert only["new"] == 3 and "index" not in only
    assert api.get("/api/news/indices").json() == []
    site.serve("/economy.rss", rss(), "application/rss+xml")  # the feeds are empty now
    site.serve("/tech.rss", rss(), "application/rss+xml")
    assert api.delete("/api/news/files").status_code == 200
    nothing = run_job(api, "/api/news/scrape")["result"]
    assert nothing["new"] == 0
    assert nothing["index"] is None
    assert "run a scrape first" in nothing["index_note"]


def test_building_before_any_scrape_fails_with_a_reason(api: httpx.Client, fresh: None) -> None:
    answer = api.post("/api/news/indices/build", json={})
    job = finished_job(api, answer.json()["job_id"])
    assert job["status"] == "failed"
    assert "run a scrape first" in job["error"]
    assert api.post("/api/news/indices/build", json={"name": "Bad Name"}).status_code == 422


# --- Schedule ------------------------------------------------------------------------------------


def test_the_daily_schedule_refreshes_once_per_local_day(
    api: httpx.Client, site: Site, fresh: None, db: Any
) -> None:
    from sqlalchemy import select

    from relaydesk.jobs.models import Job
    from relaydesk.news.tasks import scheduled_refresh

    scheduled_refresh()  # no schedule yet: nothing happens
    add_sources(api, publish(site))
    bad = api.put("/api/news/settings", json={"schedule": {"scrape_at": "25:00"}})
    assert bad.status_code == 422
    zone = api.put("/api/news/settings", json={"schedule": {"timezone": "Mars/Olympus"}})
    assert zone.status_code == 422
    assert "not a time zone" in zone.json()["detail"]
    # Midnight has always passed: the refresh of today is due now.
    schedule = {"scrape_at": "00:00", "timezone": "Pacific/Kiritimati"}
    saved = api.put("/api/news/settings", json={"schedule": schedule})
    assert saved.status_code == 200, saved.text
    assert saved.json()["schedule"]["last_run_on"] is None

    scheduled_refresh()
    scheduled_refresh()
    jobs = list(db.scalars(select(Job).where(Job.kind == "news.refresh")))
    assert len(jobs) == 1
    job = finished_job(api, jobs[0].id)
    assert job["status"] == "done", job["error"]
    assert job["result"]["scrape"]["new"] == 3
    assert job["result"]["build"]["activated"] is True
    assert api.get("/api/news/settings").json()["schedule"]["last_run_on"]
    scheduled_refresh()
    assert len(list(db.scalars(select(Job).where(Job.kind == "news.refresh")))) == 1
