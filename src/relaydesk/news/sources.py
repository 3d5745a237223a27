"""News categories and their sources, validated where a person types them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from relaydesk.core.errors import Invalid
from relaydesk.core.i18n import N_
from relaydesk.core.names import CATEGORY_PATTERN as CATEGORY_PATTERN
from relaydesk.core.names import category_slug

SourceKind = Literal["feed", "page"]
SOURCE_KINDS: tuple[str, ...] = get_args(SourceKind)
MAX_URL_LENGTH = 2048

# Query parameters that only tell the publisher where a click came from: the same
# article reached from two newsletters must count once.
_TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "ocid",
        "cmpid",
    }
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


# The categories the product document names, offered on a fresh installation (in its
# language) until each has a source.
SUGGESTED_CATEGORIES = {
    "pl": (
        "Biznes",
        "Giełda",
        "Gospodarka",
        "Nieruchomości",
        "Poradnik finansowy",
        "Praca",
        "Prawo",
        "Technologie",
    ),
    "en": (
        "Business",
        "Stock market",
        "Economy",
        "Real estate",
        "Personal finance",
        "Jobs",
        "Law",
        "Technology",
    ),
}


def suggested_categories(language: str, used: Iterable[str]) -> list[str]:
    """The suggested categories (of the language, else English) without a source yet."""
    taken = set(used)
    names = SUGGESTED_CATEGORIES.get(language, SUGGESTED_CATEGORIES["en"])
    return [name for name in names if category_slug(name) not in taken]


def category_slugs(names: Iterable[str]) -> list[str]:
    """Each name as its slug (`category_slug`), once each, in the order given."""
    return list(dict.fromkeys(category_slug(name) for name in names))


def check_url(url: str) -> str:
    """The URL without surrounding spaces, or Invalid saying what is wrong with it."""
    url = url.strip()
    if not url:
        raise Invalid(N_("a source needs a URL"), params={})
    if len(url) > MAX_URL_LENGTH:
        raise Invalid(
            N_("the URL is too long (at most %(limit)s characters)"),
            params={"limit": MAX_URL_LENGTH},
        )
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise Invalid(N_("'%(url)s' contains spaces or control characters"), params={"url": url})
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        raise Invalid(N_("'%(url)s' is not a valid URL"), params={"url": url}) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise Invalid(N_("'%(url)s' must start with http:// or https://"), params={"url": url})
    if not parts.hostname:
        raise Invalid(N_("'%(url)s' has no host name"), params={"url": url})
    if parts.username is not None or parts.password is not None:
        raise Invalid(N_("'%(url)s' must not contain a user name or password"), params={"url": url})
    return url


def normalise_url(url: str) -> str:
    """The URL as an identity for de-duplication: no fragment, no tracking parameters."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    # Filtered on the raw text so that the kept parameters stay byte for byte as given.
    query = "&".join(
        pair
        for pair in parts.query.split("&")
        if pair and not _is_tracking(unquote_plus(pair.split("=", 1)[0]))
    )
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


def _is_tracking(name: str) -> bool:
    name = name.lower()
    return name.startswith("utm_") or name in _TRACKING_PARAMS


@dataclass(frozen=True)
class Source:
    """One place articles come from: an RSS/Atom feed or a section page with article links."""

    url: str
    kind: SourceKind = "feed"

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", check_url(self.url))
        if self.kind not in SOURCE_KINDS:
            raise Invalid(
                N_(
                    "source kind '%(kind)s' is unknown; use 'feed' (RSS or Atom) or "
                    "'page' (a section page that links to articles)"
                ),
                params={"kind": self.kind},
            )


@dataclass(frozen=True)
class Category:
    """A named group of sources; `name` is the file-safe slug, `label` what a person typed."""

    name: str
    sources: Sequence[Source] = ()
    label: str = ""

    def __post_init__(self) -> None:
        label = self.label.strip() or self.name.strip()
        object.__setattr__(self, "name", category_slug(self.name))
        object.__setattr__(self, "label", label)
        object.__setattr__(self, "sources", tuple(self.sources))
        seen: set[str] = set()
        for source in self.sources:
            key = normalise_url(source.url)
            if key in seen:
                raise Invalid(
                    N_("category '%(label)s' lists %(url)s twice"),
                    params={"label": label, "url": source.url},
                )
            seen.add(key)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form that `from_dict` reads back."""
        return {
            "name": self.name,
            "label": self.label,
            "sources": [{"url": s.url, "kind": s.kind} for s in self.sources],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Category:
        """Read `{name, label?, sources: [url | {url, kind?}]}` with clear errors."""
        name = data.get("name")
        if not isinstance(name, str):
            raise Invalid(N_("a category needs a name"), params={})
        raw_sources = data.get("sources", [])
        if not isinstance(raw_sources, list):
            raise Invalid(
                N_("the sources of category '%(name)s' must be a list"), params={"name": name}
            )
        sources = []
        for raw in raw_sources:
            if isinstance(raw, str):
                sources.append(Source(raw))
            elif isinstance(raw, Mapping) and isinstance(raw.get("url"), str):
                sources.append(Source(raw["url"], raw.get("kind", "feed")))
            else:
                raise Invalid(
                    N_("a source of category '%(name)s' needs a URL"), params={"name": name}
                )
        label = data.get("label")
        return cls(name, sources, label if isinstance(label, str) else "")


def unique_categories(categories: Iterable[Category]) -> list[Category]:
    """The categories as a list; Invalid when two of them would share files."""
    found: dict[str, Category] = {}
    for category in categories:
        other = found.get(category.name)
        if other is not None:
            raise Invalid(
                N_("categories '%(first)s' and '%(second)s' would both be stored as '%(slug)s'"),
                params={"first": other.label, "second": category.label, "slug": category.name},
            )
        found[category.name] = category
    return list(found.values())
