"""The per-category files: format, listing, reading, deletion and refused names."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from relaydesk.core.errors import Invalid, NotFound
from relaydesk.news import files
from relaydesk.news.files import Article


def make(url: str, title: str, text: str, published: str | None = "2025-07-01") -> Article:
    text = files.clean_text(text)
    return Article(
        url=url,
        title=title,
        text=text,
        source="https://news.example.com/feed.xml",
        published=published,
        fetched_at="2025-07-02T08:00:00+00:00",
        content_hash=files.content_hash(text),
    )


@pytest.fixture
def stored(news_dir: Path) -> Path:
    files.write_category(
        news_dir,
        "biznes",
        [
            make("https://news.example.com/a-1", "Rates | stay put", "First line.\n\nSecond."),
            make("https://news.example.com/b-2", "Exports", "Exports grew.", published=None),
        ],
    )
    files.write_category(news_dir, "prawo", [make("https://law.example.com/c-3", "Law", "New.")])
    return news_dir


def test_text_file_has_a_header_line_per_article_and_json_the_metadata(stored: Path) -> None:
    assert (stored / "biznes.txt").read_text() == (
        "=== Rates | stay put | https://news.example.com/a-1 ===\nFirst line.\n\nSecond.\n\n"
        "=== Exports | https://news.example.com/b-2 ===\nExports grew.\n\n"
    )
    metadata = json.loads((stored / "biznes.json").read_text())
    assert metadata[0] == {
        "url": "https://news.example.com/a-1",
        "title": "Rates | stay put",
        "published": "2025-07-01",
        "fetched_at": "2025-07-02T08:00:00+00:00",
        "source": "https://news.example.com/feed.xml",
        "content_hash": files.content_hash("First line.\n\nSecond."),
        "chars": len("First line.\n\nSecond."),
    }


def test_articles_read_back_exactly_even_when_a_line_looks_like_a_header(news_dir: Path) -> None:
    tricky = "Intro.\n=== Fake | https://evil.example.com/x ===\nOutro."
    files.write_category(news_dir, "tech", [make("https://t.example.com/x-1", "Tricky", tricky)])

    [article] = files.read_category(news_dir, "tech")

    assert article.url == "https://t.example.com/x-1"
    assert article.text.startswith("Intro.\n") and article.text.endswith("\nOutro.")
    assert article.text == files.clean_text(tricky)


def test_documents_for_the_indexer_carry_category_text_and_date(stored: Path) -> None:
    documents = files.load_articles(stored)

    assert [(d.category, d.title, d.published) for d in documents] == [
        ("biznes", "Rates | stay put", "2025-07-01"),
        ("biznes", "Exports", None),
        ("prawo", "Law", "2025-07-01"),
    ]
    assert documents[0].text == "First line.\n\nSecond."
    assert documents[0].url == "https://news.example.com/a-1"


def test_texts_survive_a_lost_metadata_file(stored: Path) -> None:
    files.delete_file(stored, "biznes.json")

    documents = files.load_articles(stored, ["biznes"])

    assert [d.text for d in documents] == ["First line.\n\nSecond.", "Exports grew."]
    assert {d.published for d in documents} == {None}


def test_listing_shows_category_files_only(stored: Path) -> None:
    (stored / "notes.md").write_text("not news")
    (stored / ".biznes.json.123.tmp").write_text("half-written")
    os.symlink("/etc/hostname", stored / "evil.txt")

    listed = files.list_files(stored)

    assert [(f.name, f.category, f.kind) for f in listed] == [
        ("biznes.json", "biznes", "json"),
        ("biznes.txt", "biznes", "txt"),
        ("prawo.json", "prawo", "json"),
        ("prawo.txt", "prawo", "txt"),
    ]
    assert listed[1].size == (stored / "biznes.txt").stat().st_size
    assert listed[1].modified.tzinfo is not None
    assert files.list_files(stored / "missing") == []


def test_reading_a_file_returns_its_content(stored: Path) -> None:
    assert (
        files.read_file(stored, "prawo.txt")
        == "=== Law | https://law.example.com/c-3 ===\nNew.\n\n"
    )


@pytest.mark.parametrize(
    "name",
    [
        "../biznes.json",
        "..",
        "/etc/passwd",
        "sub/biznes.json",
        "..%2Fbiznes.json",
        "biznes.JSON",
        "biznes.json.bak",
        ".news.lock",
        "notes.md",
        "",
    ],
)
def test_names_other_than_category_files_are_refused(stored: Path, name: str) -> None:
    with pytest.raises(Invalid, match="not a news file name"):
        files.read_file(stored, name)
    with pytest.raises(Invalid):
        files.delete_file(stored, name)


def test_missing_files_and_links_are_not_found(stored: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    os.symlink(outside, stored / "evil.txt")

    for name in ("nope.json", "evil.txt"):
        with pytest.raises(NotFound, match=f"no news file '{name}'"):
            files.read_file(stored, name)
        with pytest.raises(NotFound):
            files.delete_file(stored, name)
    assert outside.read_text() == "secret"


def test_deleting_one_file_and_then_all(stored: Path) -> None:
    (stored / "notes.md").write_text("not news")

    files.delete_file(stored, "prawo.txt")
    assert "prawo.txt" not in [f.name for f in files.list_files(stored)]

    deleted = files.delete_all(stored)

    assert deleted == ["biznes.json", "biznes.txt", "prawo.json"]
    assert files.list_files(stored) == []
    assert (stored / "notes.md").read_text() == "not news"
    assert files.delete_all(stored / "missing") == []
