"""Helpers for news tests against the live server: a news site on loopback, jobs, clean data.

The live server runs in the test process, so a test may change its settings object
(`allow_private_networks`) and read or wipe its data directory directly.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any
from xml.sax.saxutils import escape

import httpx
import pytest

from tests.conftest import wait_for
from tests.fakes.news_site import Site, rss

# Three articles; only the lighthouse one says when and in what colour it is repainted.
ARTICLES = {
    "/economy/lighthouse": (
        "Gdynia lighthouse to be repainted",
        [
            "The old lighthouse at the harbour entrance in Gdynia will be repainted bright "
            "orange in September, the port authority announced on Monday.",
            "Painters will work from scaffolding for three weeks; the light itself stays "
            "on during the works so that ships can still find the harbour at night.",
            "The orange colour was chosen after a vote among the residents of the city, "
            "who preferred it to the traditional red and white stripes.",
        ],
    ),
    "/economy/bakery": (
        "Bakeries raise bread prices",
        [
            "Bakeries across the region raised the price of a loaf of rye bread by twenty "
            "cents this week, blaming the cost of flour and electricity.",
            "The bakers' guild said that wheat harvests were poor this summer and that "
            "ovens use much more energy than they did two years ago.",
            "Customers interviewed in the market square said they would buy less cake "
            "but not less bread, which they consider a daily necessity.",
        ],
    ),
    "/tech/chip": (
        "Startup unveils a low-power chip",
        [
            "A startup from Wroclaw unveiled a microcontroller that runs for ten years on "
            "a single coin battery, aimed at sensors in fields and forests.",
            "The engineers reduced the power drawn in sleep mode to a few nanoamperes by "
            "switching off every peripheral that is not needed at the moment.",
            "The first customers are farmers who want to measure soil moisture without "
            "replacing batteries every season.",
        ],
    ),
}
QUESTION = "When will the lighthouse in Gdynia be repainted and in which colour?"


def page(title: str, paragraphs: list[str]) -> str:
    """An article page the extractor reads like a real one."""
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return (
        f"<!doctype html><html><head><title>{escape(title)}</title>"
        '<meta property="article:published_time" content="2025-06-01T08:00:00Z"></head>'
        f'<body><nav><a href="/">Home</a></nav><article><h1>{escape(title)}</h1>{body}'
        "</article><footer>Example News</footer></body></html>"
    )


def publish(site: Site) -> dict[str, str]:
    """Serve two feeds (economy with two articles, tech with one); their URLs by category."""
    for path, (title, paragraphs) in ARTICLES.items():
        site.serve(path, page(title, paragraphs))
    site.serve(
        "/economy.rss",
        rss(
            ("Gdynia lighthouse to be repainted", site.url("/economy/lighthouse")),
            ("Bakeries raise bread prices", site.url("/economy/bakery")),
        ),
        "application/rss+xml",
    )
    site.serve(
        "/tech.rss",
        rss(("Startup unveils a low-power chip", site.url("/tech/chip"))),
        "application/rss+xml",
    )
    return {"Economy": site.url("/economy.rss"), "Tech": site.url("/tech.rss")}


def wipe_news_data() -> None:
    """Remove the live server's news files and indexes (they are not database rows)."""
    from relaydesk.indexes.service import index_root
    from relaydesk.news import service

    shutil.rmtree(service.news_dir(), ignore_errors=True)
    shutil.rmtree(index_root(), ignore_errors=True)


def allow_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the live server's scraper reach the loopback site (SCRAPER_ALLOW_PRIVATE_NETWORKS)."""
    from relaydesk.core.config import get_settings

    monkeypatch.setattr(get_settings(), "scraper_allow_private_networks", True)


def finished_job(client: httpx.Client, job_id: int, timeout: float = 300) -> dict[str, Any]:
    """Poll a job until it has ended; its final view."""

    def ended() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/api/jobs/{job_id}").json()
        return job if job["status"] in ("done", "failed") else None

    found: dict[str, Any] = wait_for(ended, timeout=timeout, what=f"job {job_id} to end")
    return found


def run_job(client: httpx.Client, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Start a job through the API, wait for it, and insist that it succeeded."""
    answer = client.post(path, json=body) if body is not None else client.post(path)
    assert answer.status_code == 202, answer.text
    job = finished_job(client, answer.json()["job_id"])
    assert job["status"] == "done", job["error"]
    return job


def add_sources(client: httpx.Client, feeds: dict[str, str]) -> None:
    """Add one feed per category."""
    for category, url in feeds.items():
        answer = client.post("/api/news/sources", json={"category": category, "url": url})
        assert answer.status_code == 201, answer.text


def audit_actions(api: httpx.Client) -> list[str]:
    return [e["action"] for e in api.get("/api/audit", params={"action": "news."}).json()["items"]]


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No news files or indexes from other tests (before or after); the loopback site reachable."""
    wipe_news_data()
    allow_loopback(monkeypatch)
    yield
    wipe_news_data()
