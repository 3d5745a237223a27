"""From fetched bytes to article links (feeds, section pages) and article text."""

from __future__ import annotations

import calendar
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
import httpx

from relaydesk.core.i18n import N_
from relaydesk.news.files import clean_text, clean_title
from relaydesk.news.sources import normalise_url

HTML_TYPES = frozenset({"", "text/html", "application/xhtml+xml"})

# Paths that lead to listings, accounts and files rather than to articles.
_NOT_ARTICLE_SEGMENTS = frozenset(
    {
        "tag",
        "tags",
        "tagi",
        "category",
        "categories",
        "kategoria",
        "kategorie",
        "author",
        "authors",
        "autor",
        "autorzy",
        "search",
        "szukaj",
        "login",
        "logowanie",
        "register",
        "rejestracja",
        "account",
        "konto",
        "page",
        "strona",
        "feed",
        "rss",
        "newsletter",
        "contact",
        "kontakt",
        "about",
        "privacy",
        "regulamin",
        "terms",
        "cart",
        "koszyk",
        "subscribe",
        "prenumerata",
        "wp-admin",
        "wp-login.php",
        "cdn-cgi",
    }
)
_FILE_SUFFIX = re.compile(
    r"\.(jpe?g|png|gif|webp|svg|ico|pdf|zip|gz|mp3|mp4|avi|mov|css|js|json|xml|rss|atom|"
    r"txt|docx?|xlsx?|pptx?|epub)$",
    re.IGNORECASE,
)
_PAGE_SUFFIX = re.compile(r"\.(s?html?|php|aspx?)$", re.IGNORECASE)


class ExtractError(Exception):
    """The fetched content is not what the source promised (no feed, no HTML)."""


@dataclass(frozen=True)
class Link:
    """An article URL found in a feed or on a section page, with what was said about it."""

    url: str
    title: str | None = None
    published: str | None = None


@dataclass(frozen=True)
class Extracted:
    """The text and metadata trafilatura found in an article page."""

    title: str | None
    text: str
    published: str | None


def _absolute(base: str, href: str) -> str | None:
    """`href` resolved against `base`, percent-encoded, if it is an http(s) URL."""
    try:
        url = str(httpx.URL(urljoin(base, href.strip())))
    except (httpx.InvalidURL, ValueError):
        return None
    return url if urlsplit(url).scheme in ("http", "https") else None


def _struct_time_iso(value: Any) -> str | None:
    """A feedparser time (a UTC struct_time) as an ISO date-time."""
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC).isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def feed_links(content: bytes, url: str, media_type: str, limit: int) -> list[Link]:
    """The first `limit` entries of an RSS or Atom feed."""
    # A file object, never bytes or a string: given those, feedparser may open them as a
    # URL or a local file name.
    parsed = feedparser.parse(
        io.BytesIO(content),
        response_headers={"content-location": url, "content-type": media_type or "text/xml"},
    )
    if not parsed.entries and (parsed.bozo or not parsed.get("version")):
        raise ExtractError(
            N_(
                "this is not an RSS or Atom feed; a section page with article links "
                "can be added as a source of kind 'page'"
            )
        )
    links: list[Link] = []
    seen: set[str] = set()
    for entry in parsed.entries:
        href = entry.get("link")
        absolute = _absolute(url, href) if isinstance(href, str) else None
        if absolute is None or normalise_url(absolute) in seen:
            continue
        seen.add(normalise_url(absolute))
        title = entry.get("title")
        title = clean_title(title) if isinstance(title, str) else ""
        published = entry.get("published_parsed") or entry.get("updated_parsed")
        links.append(
            Link(absolute, title or None, _struct_time_iso(published) if published else None)
        )
        if len(links) >= limit:
            break
    return links


class _AnchorParser(HTMLParser):
    """Collects `<a href>` targets and their text, honouring `<base href>`."""

    def __init__(self, base: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.anchors: list[tuple[str, list[str]]] = []
        self._open: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        href = values.get("href")
        if tag == "base" and href:
            self.base = urljoin(self.base, href)
        elif tag == "a" and href:
            self._open = []
            self.anchors.append((urljoin(self.base, href), self._open))

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open.append(data)


def _site(host: str) -> str:
    return host.lower().removeprefix("www.")


def _same_site(host: str, other: str) -> bool:
    """Same host, or one a subdomain of the other ('biznes.example.pl', 'www.example.pl')."""
    a, b = _site(host), _site(other)
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def looks_like_article(url: str, page_url: str) -> bool:
    """Whether a link on a section page plausibly leads to an article of the same site."""
    parts, page = urlsplit(url), urlsplit(page_url)
    if not parts.hostname or not page.hostname or not _same_site(parts.hostname, page.hostname):
        return False
    if normalise_url(url) == normalise_url(page_url) or _FILE_SUFFIX.search(parts.path):
        return False
    segments = [s for s in parts.path.split("/") if s]
    if not segments or any(s.lower() in _NOT_ARTICLE_SEGMENTS for s in segments):
        return False
    stem = _PAGE_SUFFIX.sub("", segments[-1].lower())
    if stem in ("index", "default", "home", "main"):
        return False
    # Articles carry a slug ("inflacja-spada-w-maju") or a number ("9123456,title.html",
    # "?id=12345"); section and navigation links rarely do.
    has_slug = len(stem) >= 8 and re.search(r"[^\W_][-_,][^\W_]", stem) is not None
    has_number = re.search(r"\d{4,}", f"{parts.path}?{parts.query}") is not None
    return has_slug or has_number


def page_links(content: bytes, url: str, limit: int) -> list[Link]:
    """Up to `limit` article links of a section page, in page order."""
    parser = _AnchorParser(url)
    try:
        parser.feed(content.decode("utf-8", errors="replace"))
        parser.close()
    except AssertionError:  # HTMLParser's reaction to some malformed markup
        pass
    links: list[Link] = []
    seen: set[str] = set()
    for href, text in parser.anchors:
        absolute = _absolute(url, href)
        if absolute is None or not looks_like_article(absolute, url):
            continue
        key = normalise_url(absolute)
        if key in seen:
            continue
        seen.add(key)
        links.append(Link(absolute, clean_title("".join(text)) or None))
        if len(links) >= limit:
            break
    return links


def article_text(content: bytes, url: str) -> Extracted | None:
    """The main text of an article page with its title and date; None when it has none."""
    # Imported on first use: with lxml it is 17 MB a server that reads no news never needs.
    import trafilatura
    from trafilatura.settings import Document

    result = trafilatura.bare_extraction(
        content,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=True,
        include_images=False,
        include_links=False,
    )
    if not isinstance(result, Document) or not result.text:
        return None
    text = clean_text(result.text)
    if not text:
        return None
    title = clean_title(result.title) if result.title else None
    return Extracted(title or None, text, result.date or None)
