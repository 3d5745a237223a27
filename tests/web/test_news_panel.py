"""The News tab: its fragments over HTTP, and the whole flow in real headless Chromium."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.news_site import Site
from tests.news.live import QUESTION, allow_loopback, publish, wipe_news_data
from tests.web.conftest import MakeUser, browser_sign_in, csrf_of

NewPage = Callable[..., Any]


@pytest.fixture
def site() -> Iterator[Site]:
    """The loopback news site (tests/fakes/news_site.py), outside the news tests' folder."""
    web = Site()
    yield web
    web.close()


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    wipe_news_data()
    allow_loopback(monkeypatch)
    yield
    wipe_news_data()


def test_viewers_see_the_tab_without_the_controls_that_change_things(
    panel: Callable[[str], httpx.Client], fresh: None
) -> None:
    page = panel("viewer").get("/news")
    assert page.status_code == 200
    html = page.text
    for section in ("news-status", "news-sources", "news-files", "news-indexes", "news-settings"):
        assert f'id="{section}"' in html
    assert 'id="news-recipients"' in html and 'hx-get="/news/recipients"' in html
    assert 'id="news-scrape"' not in html
    assert 'id="news-source-form"' not in html
    assert 'id="news-test-form"' not in html
    assert "No sources yet." in html


def test_a_fresh_install_offers_the_product_documents_categories_ready_for_sources(
    panel: Callable[[str], httpx.Client], fresh: None
) -> None:
    import re

    from relaydesk.news.sources import SUGGESTED_CATEGORIES

    client = panel("operator")
    html = client.get("/news").text
    assert "A source is an address the news are fetched from" in html

    def offered(page: str) -> list[str]:
        return re.findall(r'<span class="chip" data-category-name="([^"]+)"', page)

    # The installation speaks Polish (DEFAULT_REGION=PL): the document's own names.
    assert offered(html) == list(SUGGESTED_CATEGORIES["pl"])
    assert '<option value="Poradnik finansowy">' in html  # the category field suggests them
    headers = {"X-CSRF-Token": csrf_of(client), "HX-Request": "true"}
    added = client.post(
        "/news/sources",
        data={"category": "Poradnik finansowy", "url": "https://example.com/finanse/rss"},
        headers=headers,
    )
    assert added.status_code == 200, added.text
    assert 'data-category="poradnik_finansowy"' in added.text
    assert "Poradnik finansowy" not in offered(added.text)
    assert len(offered(added.text)) == 7
    polish = client.get("/news", headers={"Accept-Language": "pl-PL,pl;q=0.9"}).text
    assert "Kategorie gotowe na źródła:" in polish
    assert "Źródło to adres, z którego pobierane są artykuły" in polish


def test_panel_forms_refuse_bad_input_with_a_notice(
    panel: Callable[[str], httpx.Client], fresh: None
) -> None:
    client = panel("operator")
    headers = {"X-CSRF-Token": csrf_of(client), "HX-Request": "true"}
    bad = client.post("/news/sources", data={"category": "Tech", "url": "ftp://x"}, headers=headers)
    assert bad.status_code == 422
    assert "must start with http" in bad.text
    assert bad.headers["HX-Retarget"] == "#notices"
    settings = client.post(
        "/news/settings", data={"top_k": "0", "min_score": "0.3"}, headers=headers
    )
    assert settings.status_code == 422
    assert "top_k" in settings.text
    empty = client.post("/news/test", data={"query": " "}, headers=headers)
    assert empty.status_code == 422
    no_sources = client.post("/news/scrape", headers=headers)
    assert no_sources.status_code == 422
    assert "no news sources yet" in no_sources.text


def test_operator_adds_sources_fetches_builds_and_asks_in_the_browser(
    new_page: NewPage, make_user: MakeUser, site: Site, fresh: None
) -> None:
    from playwright.sync_api import expect

    feeds = publish(site)
    page = new_page()
    browser_sign_in(page, make_user("operator"))
    page.wait_for_url("**/inbox")
    page.click("nav.tabs a[href='/news']")
    page.wait_for_url("**/news")
    expect(page.locator("#news-status [data-status]")).to_have_attribute("data-status", "none")

    for category, url in feeds.items():
        page.fill("#news-source-category", category)
        page.fill("#news-source-url", url)
        page.click("#news-source-add")
        expect(page.locator(f"#news-sources [data-category='{category.lower()}']")).to_contain_text(
            url
        )

    page.click("#news-scrape")
    scrape = page.locator("#news-job article.news-job")
    expect(scrape).to_have_attribute("data-status", "done", timeout=120_000)
    expect(scrape.locator("[data-job-done]")).to_contain_text("3 new articles")
    # The same job updated the index: no separate build is needed to ask it.
    expect(scrape.locator("[data-job-index]")).to_contain_text("Index 'news' updated")
    # The files, status and index sections reloaded themselves when the job ended.
    expect(page.locator("#news-files a[data-file='economy.txt']")).to_be_visible()
    expect(page.locator("#news-status [data-status]")).to_have_attribute("data-status", "ready")
    expect(page.locator("#news-indexes tr[data-index='news']")).to_have_attribute(
        "data-active", "yes"
    )

    page.click("#news-build")  # a rebuild reuses every passage
    build = page.locator("#news-job article.news-job[data-kind='news.build_index']")
    expect(build).to_have_attribute("data-status", "done", timeout=180_000)
    expect(build).to_contain_text("(0 passages embedded")

    page.fill("#news-query", QUESTION)
    page.click("#news-ask")
    answer = page.locator("#news-answer .news-answer")
    expect(answer.locator("[data-answer-note]")).to_contain_text("No language model")
    first = answer.locator("li[data-passage-url]").first
    expect(first).to_have_attribute("data-passage-url", site.url("/economy/lighthouse"))
    expect(first).to_contain_text("Gdynia lighthouse to be repainted")


PRICE_LIST = (
    "Produkt;Cena;Kiedy\n"
    "Chleb żytni;6,50 zł;codziennie\n"
    "Sernik krakowski;45 zł za blachę;w soboty\n"
    "Pączek z różą;3,50 zł;w piątki\n"
)


def test_documents_are_uploaded_refused_and_deleted_in_the_panel(
    panel: Callable[[str], httpx.Client], fresh: None
) -> None:
    operator = panel("operator")
    headers = {"X-CSRF-Token": csrf_of(operator), "HX-Request": "true"}
    refused = operator.post(
        "/news/documents",
        files={"file": ("cennik.xlsm", b"PK\x03\x04")},
        data={"category": "Piekarnia"},
        headers=headers,
    )
    assert refused.status_code == 422
    assert refused.headers["HX-Retarget"] == "#notices"
    assert "macros" in refused.text
    added = operator.post(
        "/news/documents",
        files={"file": ("cennik.csv", PRICE_LIST.encode())},
        data={"category": "Piekarnia"},
        headers=headers,
    )
    assert added.status_code == 200, added.text
    assert "cennik.csv saved: 3 parts with text." in added.text
    assert added.headers["HX-Trigger"]
    assert 'hx-delete="/news/documents/' not in added.text  # deleting is for admins
    viewer = panel("viewer")
    listed = viewer.get("/news").text
    assert "cennik.csv" in listed and 'id="news-document-form"' not in listed
    viewer_headers = {"X-CSRF-Token": csrf_of(viewer), "HX-Request": "true"}
    sent = {"files": {"file": ("a.txt", b"x")}, "data": {"category": "a"}}
    assert viewer.post("/news/documents", headers=viewer_headers, **sent).status_code == 403

    admin = panel("admin")
    admin_headers = {"X-CSRF-Token": csrf_of(admin), "HX-Request": "true"}
    page = admin.get("/news/documents").text
    document = page.split('data-document="', 1)[1].split('"', 1)[0]
    deleted = admin.delete(f"/news/documents/{document}", headers=admin_headers)
    assert deleted.status_code == 200
    assert "No documents yet." in deleted.text


def test_an_operator_uploads_a_price_list_and_the_test_box_answers_from_its_row(
    new_page: NewPage, make_user: MakeUser, fresh: None, tmp_path: Any
) -> None:
    from playwright.sync_api import expect

    prices = tmp_path / "cennik.csv"
    prices.write_text(PRICE_LIST, encoding="utf-8")
    page = new_page()
    browser_sign_in(page, make_user("operator"))
    page.wait_for_url("**/inbox")
    page.goto("/news")
    expect(page.locator("#news-documents .empty")).to_be_visible()
    page.set_input_files("#news-document-file", str(prices))
    page.fill("#news-document-category", "Piekarnia")
    page.click("#news-document-add")
    expect(page.locator("#news-documents [data-document-saved]")).to_contain_text(
        "cennik.csv saved: 3 parts with text."
    )
    expect(page.locator("#news-documents tr[data-document]")).to_contain_text("piekarnia")
    # The index update queued with the upload makes it the active index.
    expect(page.locator("#news-status [data-status]")).to_have_attribute(
        "data-status", "ready", timeout=120_000
    )
    page.fill("#news-query", "Ile kosztuje sernik krakowski?")
    page.click("#news-ask")
    first = page.locator("#news-answer .news-answer li[data-passage-url]").first
    expect(first).to_contain_text("cennik.csv (row 3)")
    expect(first).to_contain_text("45 zł")
