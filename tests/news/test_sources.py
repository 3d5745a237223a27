"""Category names and source URLs as people type them."""

from __future__ import annotations

import re

import pytest

from relaydesk.core.errors import Invalid
from relaydesk.news.sources import (
    Category,
    Source,
    category_slug,
    normalise_url,
    unique_categories,
)


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Biznes", "biznes"),
        ("Poradnik Finansowy", "poradnik_finansowy"),
        ("Nieruchomości", "nieruchomosci"),
        ("  Łódź  Żółć ", "lodz_zolc"),
        ("tech-2025", "tech-2025"),
    ],
)
def test_category_names_become_file_safe_slugs(name: str, slug: str) -> None:
    assert category_slug(name) == slug
    category = Category(name, [Source("https://news.example.com/feed.xml")])
    assert (category.name, category.label) == (slug, name.strip())


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "needs a name"),
        ("   ", "needs a name"),
        ("Zysk & strata", "not '&'"),
        ("../etc", "not '.' '/'"),
        ("_hidden", "must start with a letter or a digit"),
        ("a" * 64, "too long"),
    ],
)
def test_bad_category_names_are_refused_with_a_reason(name: str, message: str) -> None:
    with pytest.raises(Invalid, match=re.escape(message)):
        category_slug(name)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "needs a URL"),
        ("ftp://news.example.com/feed", "must start with http:// or https://"),
        ("javascript:alert(1)", "must start with http:// or https://"),
        ("news.example.com/feed", "must start with http:// or https://"),
        ("https:///feed", "has no host name"),
        ("https://user:pw@news.example.com/", "must not contain a user name or password"),
        ("https://news.example.com/a b", "contains spaces"),
        ("https://news.example.com:99999/", "not a valid URL"),
    ],
)
def test_bad_source_urls_are_refused_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(Invalid, match=message):
        Source(url)


def test_source_kind_must_be_feed_or_page() -> None:
    with pytest.raises(Invalid, match="use 'feed'"):
        Source("https://news.example.com/", "sitemap")  # type: ignore[arg-type]


def test_urls_are_normalised_for_deduplication() -> None:
    assert (
        normalise_url("HTTPS://News.Example.com:443/a/story?id=7&utm_source=x&fbclid=1#comments")
        == "https://news.example.com/a/story?id=7"
    )
    assert normalise_url("http://news.example.com") == "http://news.example.com/"
    assert normalise_url("http://news.example.com:8080/x?b=1&a=2") == (
        "http://news.example.com:8080/x?b=1&a=2"
    )


def test_categories_round_trip_and_clash_on_the_same_file_name() -> None:
    category = Category.from_dict(
        {
            "name": "Poradnik Finansowy",
            "sources": [
                "https://news.example.com/feed.xml",
                {"url": "https://news.example.com/finanse", "kind": "page"},
            ],
        }
    )
    assert Category.from_dict(category.to_dict()) == category
    assert [s.kind for s in category.sources] == ["feed", "page"]
    with pytest.raises(Invalid, match="both be stored as 'poradnik_finansowy'"):
        unique_categories([category, Category("poradnik finansowy")])
    with pytest.raises(Invalid, match=re.escape("lists https://news.example.com/x#a twice")):
        Category(
            "x", [Source("https://news.example.com/x"), Source("https://news.example.com/x#a")]
        )
