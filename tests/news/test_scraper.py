"""Scraping a real HTTP server on loopback: files, de-duplication, limits and refusals."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from relaydesk.core import netguard
from relaydesk.core.config import Settings
from relaydesk.news import files
from relaydesk.news.scraper import ScrapeOptions, ScrapeReport, scrape
from relaydesk.news.sources import Category, Source
from tests.fakes.news_site import Site, article, rss

RSS = "application/rss+xml; charset=utf-8"


def feed_category(site: Site, name: str = "biznes", path: str = "/feed.xml") -> Category:
    return Category(name, [Source(site.url(path))])


def reasons(report: ScrapeReport) -> dict[str, str]:
    """Problem reasons by the path of their URL."""
    return {urlsplit(p.url).path: p.reason for p in report.problems}


def test_feed_and_section_page_are_stored_in_category_files(
    site: Site, news_dir: Path, options: ScrapeOptions
) -> None:
    site.serve(
        "/feed.xml",
        rss(("Rates stay put", "/biznes/rates-stay-put"), ("Exports grow", "/biznes/exports-grow")),
        RSS,
    )
    site.serve("/biznes/rates-stay-put", article("Rates stay put", "interest rate"))
    site.serve("/biznes/exports-grow", article("Exports grow", "export"))
    site.serve(
        "/technologie",
        '<html><body><a href="/">Home</a><a href="/tag/ai">AI</a><a href="/about">About</a>'
        '<a href="/img/logo.png">logo</a><a href="/technologie/chips-shortage-ends">Read more'
        '</a><a href="/technologie/2025/07/123456,new-phones.html">Phones</a></body></html>',
    )
    site.serve("/technologie/chips-shortage-ends", article("Chips shortage ends", "chip"))
    site.serve("/technologie/2025/07/123456,new-phones.html", article("New phones arrive", "phone"))
    categories = [
        Category("Biznes", [Source(site.url("/feed.xml"))]),
        Category("Technologie", [Source(site.url("/technologie"), "page")]),
    ]
    steps: list[tuple[int, int, str]] = []

    report = scrape(
        categories, news_dir, options=options, progress=lambda *step: steps.append(step)
    )

    assert [(c.name, c.new, c.stored) for c in report.categories] == [
        ("biznes", 2, 2),
        ("technologie", 2, 2),
    ]
    assert report.problems == []
    assert sorted(f.name for f in files.list_files(news_dir)) == [
        "biznes.json",
        "biznes.txt",
        "technologie.json",
        "technologie.txt",
    ]
    metadata = json.loads((news_dir / "technologie.json").read_text())
    assert {m["title"] for m in metadata} == {"Chips shortage ends", "New phones arrive"}
    entry = next(m for m in metadata if m["title"] == "Chips shortage ends")
    assert set(entry) == {
        "url", "title", "published", "fetched_at", "source", "content_hash", "chars"
    }  # fmt: skip
    assert entry["url"] == site.url("/technologie/chips-shortage-ends")
    assert entry["source"] == site.url("/technologie")
    assert entry["published"] == "2025-05-03"
    text = (news_dir / "technologie.txt").read_text()
    assert f"=== Chips shortage ends | {entry['url']} ===\n" in text
    assert "The chip report published this morning" in text
    assert entry["chars"] == len(files.read_category(news_dir, "technologie")[0].text)
    # Navigation links of the section page were never followed.
    assert site.requested("/tag/ai") == site.requested("/about") == 0
    # The feed's own titles and dates win over the page's.
    biznes = json.loads((news_dir / "biznes.json").read_text())
    assert [m["title"] for m in biznes] == ["Exports grow", "Rates stay put"]  # newest first
    assert biznes[0]["published"] == "2025-07-02T10:00:00+00:00"
    # Progress ends with every step done, and says who is asking.
    assert steps[-1][0] == steps[-1][1] == 2 + 4
    assert all(ua.startswith("relaydesk/") for ua in site.user_agents)


def test_second_scrape_adds_nothing_and_a_copy_elsewhere_is_dropped_by_content(
    site: Site, news_dir: Path, options: ScrapeOptions
) -> None:
    site.serve("/a/inflation-falls", article("Inflation falls", "inflation"))
    site.serve("/feed.xml", rss(("Inflation falls", "/a/inflation-falls")), RSS)
    scrape([feed_category(site)], news_dir, options=options)
    before = {f.name: (news_dir / f.name).read_bytes() for f in files.list_files(news_dir)}
    # The same article again with tracking parameters, and its text at another address.
    site.serve("/b/copy-of-inflation", article("Inflation falls", "inflation"))
    site.serve(
        "/feed.xml",
        rss(
            ("Inflation falls", "/a/inflation-falls?utm_source=rss&utm_medium=feed#top"),
            ("Inflation falls (copy)", "/b/copy-of-inflation"),
        ),
        RSS,
    )

    report = scrape([feed_category(site)], news_dir, options=options)

    counts = report.category("biznes")
    assert (counts.new, counts.duplicate, counts.stored) == (0, 2, 1)
    assert site.requested("/a/inflation-falls") == 1  # known by URL: not fetched again
    assert site.requested("/b/copy-of-inflation") == 1  # fetched, then known by content
    after = {f.name: (news_dir / f.name).read_bytes() for f in files.list_files(news_dir)}
    assert after == before


def test_an_article_listed_in_two_categories_is_stored_once(
    site: Site, news_dir: Path, options: ScrapeOptions
) -> None:
    site.serve("/x/shared-story", article("Shared story", "shared"))
    site.serve("/one.xml", rss(("Shared story", "/x/shared-story")), RSS)
    site.serve("/two.xml", rss(("Shared story", "/x/shared-story")), RSS)

    report = scrape(
        [feed_category(site, "one", "/one.xml"), feed_category(site, "two", "/two.xml")],
        news_dir,
        options=options,
    )

    assert [(c.new, c.duplicate) for c in report.categories] == [(1, 0), (0, 1)]
    assert site.requested("/x/shared-story") == 1


def test_newest_articles_are_kept_up_to_the_category_limit(
    site: Site, news_dir: Path, options: ScrapeOptions
) -> None:
    for topic in ("alpha", "beta", "gamma"):
        site.serve(f"/n/{topic}-story", article(topic.title(), topic))
    site.serve("/feed.xml", rss(*[(t, f"/n/{t}-story") for t in ("alpha", "beta", "gamma")]), RSS)
    limited = replace(options, keep_per_category=2)

    report = scrape([feed_category(site)], news_dir, options=limited)

    assert report.category("biznes").stored == 2
    assert [a.title for a in files.read_category(news_dir, "biznes")] == ["gamma", "beta"]


def test_robots_txt_disallow_is_honoured(
    site: Site, news_dir: Path, options: ScrapeOptions
) -> None:
    site.serve("/robots.txt", "User-agent: *\nDisallow: /private/\n", "text/plain")
    site.serve("/public/open-story", article("Open story", "open"))
    site.serve("/private/closed-story", article("Closed story", "closed"))
    site.serve(
        "/feed.xml",
        rss(("Open story", "/public/open-story"), ("Closed story", "/private/closed-story")),
        RSS,
    )

    report = scrape([feed_category(site)], news_dir, options=options)

    counts = report.category("biznes")
    assert (counts.new, counts.skipped) == (1, 1)
    assert "robots.txt of 127.0.0.1 disallows it" in reasons(report)["/private/closed-story"]
    assert site.requested("/private/closed-story") == 0
    assert site.requested("/robots.txt") == 1  # once per host and run


def test_oversize_responses_are_cut_and_reported(
    site: Site, news_dir: Path, options: ScrapeOptions
) -> None:
    total = 64 * 1024 * 1024
    site.endless("/big/endless-story", total)
    site.serve("/big/declared-story", "x" * 300_000)
    site.serve(
        "/feed.xml",
        rss(("Endless", "/big/endless-story"), ("Declared", "/big/declared-story")),
        RSS,
    )
    small = replace(options, max_bytes=100_000)

    report = scrape([feed_category(site)], news_dir, options=small)

    found = reasons(report)
    assert "larger than the 100.0 kB limit; stopped reading" in found["/big/endless-story"]
    assert "300.0 kB, over the 100.0 kB limit; not downloaded" in found["/big/declared-story"]
    assert report.category("biznes").failed == 2
    assert site.finished["/big/endless-story"].wait(30)
    # The scraper hung up: the server could not deliver the rest.
    assert site.bytes_sent["/big/endless-story"] < total


def test_a_slow_server_is_reported_as_a_timeout(
    site: Site, news_dir: Path, options: ScrapeOptions
) -> None:
    site.slow("/slow/late-story", article("Late story", "late"))
    site.serve("/feed.xml", rss(("Late story", "/slow/late-story")), RSS)
    quick = replace(options, timeout_seconds=1.0)

    report = scrape([feed_category(site)], news_dir, options=quick)

    assert report.category("biznes").failed == 1
    assert "(timeout)" in reasons(report)["/slow/late-story"]


def test_a_redirect_to_a_non_web_address_is_refused(
    site: Site, news_dir: Path, options: ScrapeOptions
) -> None:
    site.redirect("/r/moved-story", "file:///etc/passwd")
    site.serve("/feed.xml", rss(("Moved", "/r/moved-story")), RSS)

    report = scrape([feed_category(site)], news_dir, options=options)

    assert report.category("biznes").skipped == 1
    assert "refused: redirect to 'file:///etc/passwd'" in reasons(report)["/r/moved-story"]


def test_a_redirect_into_the_internal_network_is_refused_at_that_hop(
    site: Site, news_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 127.0.0.1 stands in for a public site; "localhost" stays internal.
    real = netguard.internal_address
    monkeypatch.setattr(
        netguard,
        "internal_address",
        lambda host, port=None: None if host == "127.0.0.1" else real(host, port),
    )
    site.serve("/inner/secret-story", article("Secret", "secret"))
    site.redirect("/r/jump-story", site.url("/inner/secret-story", host="localhost"))
    site.serve("/feed.xml", rss(("Jump", "/r/jump-story")), RSS)

    report = scrape([feed_category(site)], news_dir, options=ScrapeOptions())

    assert report.category("biznes").skipped == 1
    reason = reasons(report)["/r/jump-story"]
    assert "refused: localhost resolves to the internal address" in reason
    assert "SCRAPER_ALLOW_PRIVATE_NETWORKS=true" in reason
    assert site.requested("/r/jump-story") == 1
    assert site.requested("/inner/secret-story") == 0


def test_loopback_sources_are_refused_by_default_before_any_request(
    site: Site, news_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SCRAPER_ALLOW_PRIVATE_NETWORKS", raising=False)
    site.serve("/feed.xml", rss(("Story", "/s/some-story")), RSS)
    defaults = ScrapeOptions.from_settings(Settings(_env_file=None))
    assert defaults.allow_private_networks is False

    report = scrape([feed_category(site)], news_dir, options=defaults)

    assert report.category("biznes").skipped == 1
    assert "127.0.0.1 resolves to the internal address 127.0.0.1" in reasons(report)["/feed.xml"]
    assert site.requests == []
    assert files.list_files(news_dir) == []


def test_a_name_that_resolves_inside_at_connect_time_gets_no_request(
    site: Site, news_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The name looked public when checked (DNS rebinding), then connected to loopback.
    monkeypatch.setattr(netguard, "check_public_url", lambda url, *, setting: None)
    site.serve("/feed.xml", rss(("Story", "/s/some-story")), RSS)

    report = scrape([feed_category(site)], news_dir, options=ScrapeOptions())

    assert report.category("biznes").skipped == 1
    assert "the connection reached the internal address 127.0.0.1" in reasons(report)["/feed.xml"]
    assert site.requests == []


def test_broken_sources_are_reported_and_the_rest_is_kept(
    site: Site, news_dir: Path, options: ScrapeOptions
) -> None:
    site.serve("/n/good-story", article("Good", "good"))
    site.serve("/feed.xml", rss(("Good", "/n/good-story"), ("Gone", "/n/gone-story")), RSS)
    site.serve("/not-a-feed", "<html><body><p>Hello</p></body></html>")
    site.serve("/empty-section", "<html><body><a href='/about'>About</a></body></html>")
    categories = [
        Category("biznes", [Source(site.url("/feed.xml")), Source(site.url("/not-a-feed"))]),
        Category("prawo", [Source(site.url("/empty-section"), "page")]),
    ]

    report = scrape(categories, news_dir, options=options)

    found = reasons(report)
    assert "HTTP 404" in found["/n/gone-story"]
    assert "not an RSS or Atom feed" in found["/not-a-feed"]
    assert found["/empty-section"] == "no article links found"
    assert [(c.new, c.failed, c.skipped) for c in report.categories] == [(1, 2, 0), (0, 0, 1)]
    assert report.to_dict()["new"] == 1


def test_options_follow_the_settings() -> None:
    settings = Settings(
        _env_file=None,
        public_base_url="https://desk.example.com",
        scraper_concurrency=3,
        scraper_max_bytes=2_000_000,
    )
    options = ScrapeOptions.from_settings(settings)
    assert options.user_agent.startswith("relaydesk/")
    assert options.user_agent.endswith("(+https://desk.example.com)")
    assert (options.concurrency, options.max_bytes) == (3, 2_000_000)
