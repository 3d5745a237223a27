"""Names that become paths: categories and index names never lead out of their folder.

A category name is the stem of two files in DATA_DIR/news and an index name a folder
in DATA_DIR/indexes; whatever a person or a client sends, the API refuses a name that
is not one with a 422 that says why, before any job starts, and the file functions
refuse it again for a name that reaches them another way (a job queued by an older
version, a row written by hand).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from relaydesk.core.errors import Invalid
from relaydesk.core.ondisk import inside
from relaydesk.knowledge import store
from relaydesk.media import store as media_store
from relaydesk.news import files
from tests.news.live import finished_job, wipe_news_data

BAD_NAMES = [
    "../../outside/secret",
    "../outside/secret",
    "/etc/passwd",
    "economy/../../secret",
    "eco\x00nomy",
    "eco\\nomy",
    "eco\nnomy",
    "..",
    ".",
]


@pytest.fixture
def secret() -> Iterator[Path]:
    """An article file outside the news folder (in DATA_DIR and next to it)."""
    from relaydesk.core.config import get_settings

    wipe_news_data()
    data_dir = get_settings().data_dir
    made = []
    for folder in (data_dir / "outside", data_dir.parent / "outside"):
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "secret.txt"
        path.write_text("=== Salaries | https://intranet.example/pay ===\nThe CEO earns a lot.\n")
        made.append(path)
    yield made[0]
    for path in made:
        path.unlink(missing_ok=True)
    wipe_news_data()


def jobs(api: httpx.Client) -> list[dict[str, object]]:
    found: list[dict[str, object]] = api.get("/api/jobs").json()
    return found


@pytest.mark.parametrize("name", BAD_NAMES)
def test_building_from_a_category_outside_the_news_folder_is_refused(
    api: httpx.Client, secret: Path, name: str
) -> None:
    answer = api.post("/api/news/indices/build", json={"categories": [name]})
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["code"] == "invalid"
    assert "category name" in body["detail"]
    assert jobs(api) == []
    assert api.get("/api/news/indices").json() == []


@pytest.mark.parametrize("name", BAD_NAMES)
def test_scraping_a_category_that_is_not_a_name_is_refused_with_the_rule(
    api: httpx.Client, name: str
) -> None:
    api.post("/api/news/sources", json={"category": "Tech", "url": "https://example.com/rss"})
    answer = api.post("/api/news/scrape", json={"categories": [name]})
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail.startswith("category name"), detail
    assert "\x00" not in detail and "\n" not in detail  # shown escaped, on one line
    assert jobs(api) == []


@pytest.mark.parametrize("name", ["..", "a/b", "news\x00", "../indexes", "News"])
def test_index_names_that_are_not_names_are_refused_everywhere(
    api: httpx.Client, name: str
) -> None:
    built = api.post("/api/news/indices/build", json={"name": name})
    assert built.status_code == 422, built.text
    assert "index name" in built.json()["detail"]
    exported = api.get("/api/news/faiss/export", params={"name": name})
    assert exported.status_code == 422, exported.text
    upload = {"file": ("b.zip", b"PK", "application/zip")}
    imported = api.post("/api/news/faiss/import", files=upload, data={"name": name})
    assert imported.status_code == 422, imported.text
    assert jobs(api) == []


def test_a_category_label_names_its_files_in_a_build(api: httpx.Client, secret: Path) -> None:
    from relaydesk.news import service

    files.write_category(
        service.news_dir(),
        "poradnik_finansowy",
        [
            files.Article(
                url="https://news.example.com/a",
                title="Savings",
                text="Put a tenth of every salary aside before paying the bills.",
                source="https://news.example.com/feed",
                published="2025-07-01",
                fetched_at="2025-07-02T08:00:00+00:00",
                content_hash="x",
            )
        ],
    )
    answer = api.post("/api/news/indices/build", json={"categories": ["Poradnik Finansowy"]})
    assert answer.status_code == 202, answer.text
    job = finished_job(api, answer.json()["job_id"])
    assert job["status"] == "done", job["error"]
    assert job["result"]["documents"] == 1


# --- The file functions themselves ------------------------------------------------------------


@pytest.mark.parametrize("name", BAD_NAMES)
def test_category_files_are_never_read_or_written_outside_their_folder(
    tmp_path: Path, name: str
) -> None:
    news = tmp_path / "news"
    news.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("=== S | https://x.example/ ===\nsecret\n")
    with pytest.raises(Invalid):
        files.read_category(news, name)
    with pytest.raises(Invalid):
        files.load_articles(news, [name])
    with pytest.raises(Invalid):
        files.write_category(news, name, [])
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["news", "outside", "secret.txt"]


def test_a_category_file_that_is_a_link_out_of_the_folder_is_not_followed(tmp_path: Path) -> None:
    news = tmp_path / "news"
    news.mkdir()
    outside = tmp_path / "secret.txt"
    outside.write_text("=== S | https://x.example/ ===\nsecret\n")
    os.symlink(outside, news / "economy.txt")
    with pytest.raises(Invalid, match="outside"):
        files.read_category(news, "economy")
    assert files.list_files(news) == []


@pytest.mark.parametrize("name", [*BAD_NAMES, "", "a" * 300])
def test_inside_refuses_every_name_that_is_not_one_entry_of_the_folder(
    tmp_path: Path, name: str
) -> None:
    with pytest.raises(Invalid):
        inside(tmp_path, name)


def test_inside_gives_the_entry_of_the_folder_and_follows_no_link_out(tmp_path: Path) -> None:
    folder = tmp_path / "news"
    folder.mkdir()
    assert inside(folder, "economy.txt") == folder / "economy.txt"
    assert inside(folder, "Łódź.txt") == folder / "Łódź.txt"
    os.symlink(tmp_path, folder / "up")
    os.symlink(folder / "loop", folder / "loop")
    for link in ("up", "loop"):
        with pytest.raises(Invalid, match="outside"):
            inside(folder, link)


def test_index_functions_refuse_names_outside_the_root(tmp_path: Path) -> None:
    for name in BAD_NAMES:
        for call in (store.activate, store.delete, store.load):
            with pytest.raises(Invalid):
                call(tmp_path, name)


def test_a_media_file_name_with_a_trailing_line_break_is_not_a_digest() -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        media_store.path_of("a" * 64 + "\n")
