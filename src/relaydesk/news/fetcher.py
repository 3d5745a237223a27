"""HTTP for the scraper: address checks on every hop, robots.txt, size and time limits.

Every URL a scrape touches was typed by a panel user or found on someone else's web
page, so each request — and each redirect hop, followed here by hand — is checked
against the internal-network guard before it is sent, and the address actually
connected to is checked again (a name may resolve differently the second time).

A URL that cannot be had is a FetchError, a VendorError whose vendor is the web
server: nothing retries within a run (the next scheduled run tries again), but the
kind says which failures may pass (no answer, 429, 5xx) and which will not.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from protego import Protego

from relaydesk import __version__
from relaydesk.core import netguard
from relaydesk.core.i18n import N_
from relaydesk.core.ondisk import human_size
from relaydesk.core.vendor import Kind, VendorError, status_kind

SETTING = "SCRAPER_ALLOW_PRIVATE_NETWORKS"
ROBOTS_AGENT = "relaydesk"
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
ACCEPT = (
    "text/html,application/xhtml+xml,application/rss+xml,application/atom+xml,"
    "application/xml;q=0.9,text/xml;q=0.9,*/*;q=0.8"
)


def user_agent(public_base_url: str | None) -> str:
    """An honest User-Agent: who is asking and, when known, where to find them."""
    if public_base_url:
        return f"relaydesk/{__version__} (+{public_base_url})"
    return f"relaydesk/{__version__}"


class FetchError(VendorError):
    """A URL was not fetched; `skipped` when on purpose (refused, robots.txt), not broken.

    Its kind is permanent when skipped, else read from the HTTP status, unless given.
    """

    def __init__(
        self,
        reason: str,
        *,
        skipped: bool = False,
        status: int | None = None,
        kind: Kind | None = None,
    ) -> None:
        if kind is None:
            kind = status_kind(status) if status and not skipped else Kind.PERMANENT
        super().__init__(reason, vendor="web", kind=kind, status=status)
        self.reason = reason
        self.skipped = skipped


@dataclass(frozen=True)
class Limits:
    """What one request may cost."""

    allow_private_networks: bool = False
    timeout_seconds: float = 20.0
    max_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    connections: int = 4
    user_agent: str = user_agent(None)


@dataclass(frozen=True)
class Page:
    """A fetched response body."""

    url: str  # after redirects
    content: bytes
    media_type: str  # lower case, without parameters; "" when not given


def read_error(response: httpx.Response) -> FetchError:
    """A web server's answer other than 2xx or a redirect: 429 and 5xx may pass."""
    status, phrase = response.status_code, response.reason_phrase.rstrip()
    reason = (
        N_("the server answered HTTP %(status)s %(phrase)s") % {"status": status, "phrase": phrase}
        if phrase
        else N_("the server answered HTTP %(status)s") % {"status": status}
    )
    return FetchError(reason, status=status)


class Fetcher:
    """A thread-safe HTTP client for one scrape run (robots.txt is cached for the run)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._client = httpx.Client(
            headers={"User-Agent": limits.user_agent, "Accept": ACCEPT},
            timeout=httpx.Timeout(limits.timeout_seconds),
            limits=httpx.Limits(max_connections=limits.connections + 2),
            follow_redirects=False,
            # A proxy from the environment would resolve names itself, out of the
            # guard's sight.
            trust_env=False,
        )
        # A name can resolve to another address at connect time than when it was checked.
        self._extensions = {} if limits.allow_private_networks else {"trace": self._check_peer}
        self._lock = threading.Lock()
        self._robots: dict[str, Protego | FetchError | None] = {}
        self._robots_locks: dict[str, threading.Lock] = {}

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._client.close()

    def get(self, url: str) -> Page:
        """GET `url` if the guard and robots.txt allow it; FetchError otherwise."""
        return self._get(url, robots=True)

    # Requests -----------------------------------------------------------------------

    def _get(self, url: str, *, robots: bool) -> Page:
        for _ in range(self.limits.max_redirects + 1):
            self.check_address(url)
            if robots:
                self._check_robots(url)
            deadline = time.monotonic() + self.limits.timeout_seconds
            try:
                with self._client.stream("GET", url, extensions=self._extensions) as response:
                    location = response.headers.get("location")
                    if response.status_code in REDIRECT_CODES and location:
                        url = self._redirect_target(url, location)
                        continue
                    if not response.is_success:
                        raise read_error(response)
                    content = self._read(response, deadline)
                    media_type = response.headers.get("content-type", "")
                    return Page(url, content, media_type.split(";")[0].strip().lower())
            except httpx.TimeoutException:
                raise FetchError(
                    N_("no answer within %(seconds)s s (timeout)")
                    % {"seconds": f"{self.limits.timeout_seconds:g}"},
                    kind=Kind.TRANSIENT,
                ) from None
            except httpx.HTTPError as exc:
                raise FetchError(
                    N_("the request failed: %(reason)s") % {"reason": exc}, kind=Kind.TRANSIENT
                ) from None
            except httpx.InvalidURL:
                raise FetchError(N_("'%(url)s' is not a valid address") % {"url": url}) from None
        raise FetchError(N_("more than %(limit)s redirects") % {"limit": self.limits.max_redirects})

    def check_address(self, url: str) -> None:
        """Refuse (FetchError, skipped) a URL that is not http(s) or leads inside."""
        try:
            scheme = urlsplit(url).scheme.lower()
        except ValueError:  # such as a broken IPv6 address
            raise FetchError(N_("'%(url)s' is not a valid address") % {"url": url}) from None
        if scheme not in ("http", "https"):
            raise FetchError(
                N_("refused: '%(url)s' is not an http(s) address") % {"url": url}, skipped=True
            )
        if self.limits.allow_private_networks:
            return
        try:
            netguard.check_public_url(url, setting=SETTING)
        except netguard.BlockedAddress as exc:
            raise FetchError(N_("refused: %(reason)s") % {"reason": exc}, skipped=True) from None
        except ValueError:  # a port that is not a number
            raise FetchError(N_("'%(url)s' is not a valid address") % {"url": url}) from None

    def _check_peer(self, event: str, info: dict[str, Any]) -> None:
        """Refuse a new connection that ended up at an internal address after all."""
        try:
            netguard.check_peer(event, info, setting=SETTING)
        except netguard.BlockedAddress as exc:
            raise FetchError(N_("refused: %(reason)s") % {"reason": exc}, skipped=True) from None

    def _redirect_target(self, url: str, location: str) -> str:
        try:
            target = urljoin(url, location.strip())
            scheme = urlsplit(target).scheme.lower()
        except ValueError:
            raise FetchError(
                N_("redirect to '%(url)s', not a valid address") % {"url": location}
            ) from None
        if scheme not in ("http", "https"):
            raise FetchError(
                N_("refused: redirect to '%(url)s', not an http(s) address") % {"url": target},
                skipped=True,
            )
        return target

    def _read(self, response: httpx.Response, deadline: float) -> bytes:
        """The body, refusing to read past the size limit or the time limit."""
        limit = self.limits.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise FetchError(
                N_("the response is %(size)s, over the %(limit)s limit; not downloaded")
                % {"size": human_size(int(declared)), "limit": human_size(limit)}
            )
        chunks = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise FetchError(
                    N_("the response is larger than the %(limit)s limit; stopped reading it")
                    % {"limit": human_size(limit)}
                )
            # The read timeout only bounds each pause; a server dripping bytes could
            # otherwise hold a worker forever.
            if time.monotonic() > deadline:
                raise FetchError(
                    N_("the response took longer than %(seconds)s s (timeout)")
                    % {"seconds": f"{self.limits.timeout_seconds:g}"}
                )
            chunks.append(chunk)
        return b"".join(chunks)

    # robots.txt ---------------------------------------------------------------------

    def _check_robots(self, url: str) -> None:
        parts = urlsplit(url)
        origin = f"{parts.scheme.lower()}://{parts.netloc.lower()}"
        with self._lock:
            origin_lock = self._robots_locks.setdefault(origin, threading.Lock())
        with origin_lock:  # one robots.txt request per host, however many threads ask
            if origin not in self._robots:
                self._robots[origin] = self._load_robots(origin)
        rules = self._robots[origin]
        if isinstance(rules, FetchError) and rules.skipped:  # refused, like the page itself
            raise FetchError(rules.reason, skipped=True)
        if isinstance(rules, FetchError):
            raise FetchError(
                N_(
                    "robots.txt of %(host)s could not be read (%(reason)s); "
                    "the site is skipped until it can"
                )
                % {"host": parts.hostname, "reason": rules.reason},
                skipped=True,
            )
        if rules is not None and not rules.can_fetch(url, ROBOTS_AGENT):
            raise FetchError(
                N_("robots.txt of %(host)s disallows it") % {"host": parts.hostname}, skipped=True
            )

    def _load_robots(self, origin: str) -> Protego | FetchError | None:
        """The rules; None when the site has none; the error when it cannot be read."""
        try:
            page = self._get(f"{origin}/robots.txt", robots=False)
        except FetchError as exc:
            # RFC 9309: a missing robots.txt (4xx) allows everything; an unreachable
            # one (5xx, network error) disallows everything.
            if exc.status is not None and 400 <= exc.status < 500:
                return None
            return exc
        return Protego.parse(page.content.decode("utf-8", errors="replace"))
