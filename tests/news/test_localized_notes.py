"""Notes the news jobs and the test box keep in English: Polish in the panel, English in the API.

A scrape's problems, a job's progress and the test box's note are stored (or answered) in
English; the Polish panel shows them translated, recognised from the catalog templates
they were made from.
"""

from __future__ import annotations

from collections.abc import Callable
from html import unescape
from pathlib import Path

import httpx
import numpy as np

from relaydesk.core.i18n import translate_stored
from relaydesk.knowledge import indexing
from relaydesk.knowledge.embeddings import Vectors
from relaydesk.news import scraper
from relaydesk.news.sources import Category, Source
from tests.fakes.news_site import Site, rss
from tests.news.live import QUESTION, add_sources, finished_job, publish, run_job
from tests.news.live import fresh as fresh  # a fixture
from tests.web.conftest import csrf_of, make_user, panel  # noqa: F401 (fixtures: a signed-in panel)

POLISH = {"Accept-Language": "pl-PL,pl;q=0.9"}


def polish_panel(panel: Callable[[str], httpx.Client], role: str) -> httpx.Client:  # noqa: F811
    client = panel(role)
    client.headers.update(POLISH)
    client.headers.update({"X-CSRF-Token": csrf_of(client), "HX-Request": "true"})
    return client


def broken_sources(site: Site) -> dict[str, str]:
    """Four sources that bring nothing, each for another reason."""
    site.serve("/robots.txt", "User-agent: *\nDisallow: /private\n", "text/plain")
    site.serve("/empty.rss", rss(), "application/rss+xml")
    site.serve("/leaflet.pdf", b"%PDF-1.4 not an article", "application/pdf")
    site.serve("/pdf.rss", rss(("A leaflet", site.url("/leaflet.pdf"))), "application/rss+xml")
    return {
        "Gone": site.url("/missing.rss"),
        "Hidden": site.url("/private/news.rss"),
        "Empty": site.url("/empty.rss"),
        "Leaflets": site.url("/pdf.rss"),
    }


def test_the_problems_of_a_scrape_are_listed_in_polish_in_the_panel_and_english_in_the_api(
    panel: Callable[[str], httpx.Client],  # noqa: F811
    api: httpx.Client,
    site: Site,
    fresh: None,
) -> None:
    add_sources(api, broken_sources(site))
    started = api.post("/api/news/scrape", json={"build": False})
    assert started.status_code == 202, started.text
    job = finished_job(api, started.json()["job_id"])
    assert job["status"] == "done", job["error"]
    reasons = {p["url"].rsplit("/", 1)[-1]: p["reason"] for p in job["result"]["problems"]}
    assert reasons == {
        "missing.rss": "the server answered HTTP 404 Not Found",
        "news.rss": "robots.txt of 127.0.0.1 disallows it",
        "empty.rss": "no article links found",
        "leaflet.pdf": "not an article page (application/pdf)",
    }

    shown = unescape(polish_panel(panel, "viewer").get(f"/news/jobs/{job['id']}").text)
    assert "serwer odpowiedział HTTP 404 Not Found" in shown
    assert "robots.txt serwisu 127.0.0.1 na to nie pozwala" in shown
    assert "nie znaleziono linków do artykułów" in shown
    assert "to nie jest strona artykułu (application/pdf)" in shown
    for english in reasons.values():
        assert english not in shown


def test_the_test_box_note_is_polish_in_the_panel_and_english_in_the_api(
    panel: Callable[[str], httpx.Client],  # noqa: F811
    api: httpx.Client,
    site: Site,
    fresh: None,
) -> None:
    add_sources(api, publish(site))
    run_job(api, "/api/news/scrape")  # builds the index too

    by_api = api.post("/api/news/test-faiss", json={"query": QUESTION}).json()
    assert by_api["note"].startswith("No language model is configured: ")
    assert by_api["note"].endswith(". Showing the passages instead.")

    operator = polish_panel(panel, "operator")
    shown = unescape(operator.post("/news/test", data={"query": QUESTION}).text)
    assert "Nie skonfigurowano modelu językowego: " in shown
    assert "Zamiast odpowiedzi pokazano fragmenty." in shown
    assert "No language model" not in shown


class FlatEmbedder:
    """The same unit vector for every text: enough for a build's progress."""

    provider, model, dimension = "test", "flat", 4

    def embed(self, texts: list[str]) -> Vectors:
        return np.full((len(texts), 4), 0.5, dtype=np.float32)

    def embed_query(self, text: str) -> Vectors:
        row: Vectors = self.embed([text])[0]
        return row


def test_scrape_and_build_progress_reads_back_in_polish(site: Site, tmp_path: Path) -> None:
    site.serve("/empty.rss", rss(), "application/rss+xml")
    said: list[str] = []
    scraper.scrape(
        [Category("Empty", [Source(site.url("/empty.rss"), "feed")])],
        tmp_path / "news",
        options=scraper.ScrapeOptions(allow_private_networks=True, timeout_seconds=10),
        progress=lambda done, total, message: said.append(message),
    )
    assert said[0] == "reading 1 sources"
    assert said[-1] == "saved 0 new articles"
    assert translate_stored("pl", said[0]) == "odczytywanie źródeł: 1"
    assert translate_stored("pl", said[-1]) == "zapisano nowe artykuły: 0"

    reported: list[str] = []
    document = indexing.Document("https://example.com/a", "A", "news", "Some text. " * 50, None)
    indexing.build(
        tmp_path / "indexes",
        "notes",
        [document],
        FlatEmbedder(),
        lambda done, total, message: reported.append(message),
    )
    assert "writing the index" in reported
    embedded = next(m for m in reported if m.startswith("embedded "))
    assert translate_stored("pl", embedded).startswith("przetworzono ")
    unchanged = next(m for m in reported if "to embed" in m)
    assert translate_stored("pl", unchanged).startswith("fragmenty bez zmian: 0")
    assert translate_stored("pl", "writing the index") == "zapisywanie indeksu"
