"""Per-category article files: `<category>.json` (metadata) and `<category>.txt` (text).

The text file is what a person opens: every article starts with a header line
`=== <title> | <url> ===` followed by its text and a blank line. It is also the record of
which articles exist; the JSON file adds their metadata. A category whose JSON file was
deleted or damaged keeps its texts, and one whose text file is gone loses its articles
(they are fetched again on the next scrape).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from relaydesk.core import clock
from relaydesk.core.errors import Invalid, NotFound
from relaydesk.core.i18n import N_
from relaydesk.core.ondisk import file_lock, inside, write_atomically
from relaydesk.news.sources import CATEGORY_PATTERN

log = logging.getLogger(__name__)

FileKind = Literal["json", "txt"]
FILE_NAME = re.compile(rf"({CATEGORY_PATTERN.pattern})\.(json|txt)")
HEADER = re.compile(r"=== (.*) \| (\S+) ===")
LOCK_NAME = ".news.lock"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Article:
    """One stored article."""

    url: str
    title: str
    text: str
    source: str
    published: str | None
    fetched_at: str
    content_hash: str

    @property
    def chars(self) -> int:
        """Length of the text in characters."""
        return len(self.text)

    @property
    def sort_key(self) -> str:
        """Newest first sorts on this (ISO dates and date-times compare as text)."""
        return self.published or self.fetched_at

    def metadata(self) -> dict[str, Any]:
        """The entry written to `<category>.json`."""
        return {
            "url": self.url,
            "title": self.title,
            "published": self.published,
            "fetched_at": self.fetched_at,
            "source": self.source,
            "content_hash": self.content_hash,
            "chars": self.chars,
        }


@dataclass(frozen=True)
class NewsDocument:
    """An article as the indexer sees it."""

    url: str
    title: str
    category: str
    text: str
    published: str | None
    content_hash: str


@dataclass(frozen=True)
class StoredFile:
    """One file in the news directory, as the panel lists it."""

    name: str
    category: str
    kind: FileKind
    size: int
    modified: datetime


def clean_text(text: str) -> str:
    """Text as stored: Unix line ends, no control characters, no runs of blank lines."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = []
    for line in text.split("\n"):
        line = line.rstrip()
        # A line that looks like an article header would split the article when read back.
        if HEADER.fullmatch(line):
            line = line[1:]
        lines.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def clean_title(title: str) -> str:
    """A title on one line (it goes into a header line)."""
    return " ".join(_CONTROL.sub(" ", title).split())


def content_hash(text: str) -> str:
    """SHA-256 of the text with whitespace collapsed: the same article, however wrapped."""
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()


def now_iso() -> str:
    """The current UTC time as stored in `fetched_at`."""
    return clock.now().replace(microsecond=0).isoformat()


def category_file(directory: Path, category: str, kind: FileKind) -> Path:
    """The path of a category's file; Invalid for a name that is not a category's."""
    name = f"{category}.{kind}"
    if not FILE_NAME.fullmatch(name):
        raise Invalid(
            N_("%(category)s is not a category name"), params={"category": repr(category[:80])}
        )
    return inside(directory, name)


# Reading ------------------------------------------------------------------------------


def _parse_text(content: str) -> list[tuple[str, str, str]]:
    """(title, url, text) of every article in a text file, in file order."""
    found: list[tuple[str, str, list[str]]] = []
    for line in content.split("\n"):
        header = HEADER.fullmatch(line)
        if header:
            found.append((header.group(1), header.group(2), []))
        elif found:
            found[-1][2].append(line)
    return [(title, url, "\n".join(lines).strip()) for title, url, lines in found]


def _read_metadata(path: Path) -> dict[str, dict[str, Any]]:
    """The JSON entries by URL; a damaged file is logged and read as empty."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("news: ignoring unreadable %s: %s", path, exc)
        return {}
    if not isinstance(data, list):
        log.warning("news: ignoring %s: not a list of articles", path)
        return {}
    return {entry["url"]: entry for entry in data if isinstance(entry, dict) and "url" in entry}


def _text(entry: dict[str, Any], key: str) -> str | None:
    value = entry.get(key)
    return value if isinstance(value, str) and value else None


def read_category(directory: Path, category: str) -> list[Article]:
    """The stored articles of a category (newest first), empty when it has none."""
    text_path = category_file(directory, category, "txt")
    try:
        content = text_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    metadata = _read_metadata(category_file(directory, category, "json"))
    articles = []
    for title, url, text in _parse_text(content):
        if not text:
            continue
        entry = metadata.get(url, {})
        articles.append(
            Article(
                url=url,
                title=title,
                text=text,
                source=_text(entry, "source") or "",
                published=_text(entry, "published"),
                fetched_at=_text(entry, "fetched_at") or "",
                content_hash=_text(entry, "content_hash") or content_hash(text),
            )
        )
    return articles


def load_articles(directory: Path, categories: Iterable[str] | None = None) -> list[NewsDocument]:
    """Every stored article with its text, by category, for the indexer."""
    names = (
        sorted({f.category for f in list_files(directory) if f.kind == "txt"})
        if categories is None
        else list(categories)
    )
    return [
        NewsDocument(a.url, a.title, name, a.text, a.published, a.content_hash)
        for name in names
        for a in read_category(directory, name)
    ]


# Writing ------------------------------------------------------------------------------


def format_text(articles: Iterable[Article]) -> str:
    """The content of `<category>.txt`."""
    return "".join(f"=== {a.title} | {a.url} ===\n{a.text}\n\n" for a in articles)


def write_category(directory: Path, category: str, articles: list[Article]) -> None:
    """Store a category's articles (in the order given) in its two files."""
    text_path = category_file(directory, category, "txt")
    json_path = category_file(directory, category, "json")
    directory.mkdir(parents=True, exist_ok=True)
    # The text first: it decides which articles exist, so a crash between the two
    # writes leaves texts whose metadata is missing rather than metadata without text.
    write_atomically(text_path, format_text(articles).encode())
    metadata = json.dumps([a.metadata() for a in articles], ensure_ascii=False, indent=2)
    write_atomically(json_path, metadata.encode())


def directory_lock(directory: Path) -> contextlib.AbstractContextManager[None]:
    """Hold the directory's lock: one read-merge-write at a time across processes."""
    return file_lock(directory / LOCK_NAME)


# Listing and deleting -----------------------------------------------------------------


def _entry(directory: Path, name: str) -> tuple[Path, os.stat_result] | None:
    """The path and status of a regular news file called `name`, or None."""
    if not FILE_NAME.fullmatch(name):
        return None
    try:
        path = inside(directory, name)
        status = path.lstat()
    except (Invalid, FileNotFoundError):
        return None
    # A symbolic link could point anywhere on the server.
    return (path, status) if stat.S_ISREG(status.st_mode) else None


def list_files(directory: Path) -> list[StoredFile]:
    """The category files in the directory, sorted by category then kind."""
    try:
        names = sorted(p.name for p in directory.iterdir())
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        entry = _entry(directory, name)
        if entry is None:
            continue
        category, _, kind = name.rpartition(".")
        found.append(
            StoredFile(
                name=name,
                category=category,
                kind="json" if kind == "json" else "txt",
                size=entry[1].st_size,
                modified=datetime.fromtimestamp(entry[1].st_mtime, UTC),
            )
        )
    return found


def file_path(directory: Path, name: str) -> Path:
    """The path of an existing news file; Invalid or NotFound for anything else."""
    if not FILE_NAME.fullmatch(name):
        raise Invalid(
            N_("'%(name)s' is not a news file name: expected <category>.json or <category>.txt"),
            params={"name": name},
        )
    entry = _entry(directory, name)
    if entry is None:
        raise NotFound(N_("there is no news file '%(name)s'"), params={"name": name})
    return entry[0]


def read_file(directory: Path, name: str) -> str:
    """The content of one news file."""
    return file_path(directory, name).read_text(encoding="utf-8", errors="replace")


def delete_file(directory: Path, name: str) -> None:
    """Delete one news file."""
    with directory_lock(directory):
        file_path(directory, name).unlink()


def delete_all(directory: Path) -> list[str]:
    """Delete every news file; returns the names deleted."""
    if not directory.is_dir():
        return []
    with directory_lock(directory):
        files = list_files(directory)
        for stored in files:
            (directory / stored.name).unlink(missing_ok=True)
    return [f.name for f in files]
