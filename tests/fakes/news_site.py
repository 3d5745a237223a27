"""A small news web site on loopback whose feeds, pages and robots.txt a test writes.

Site serves what a test put at a path (pages, redirects, endless and slow answers) and
records every request; `article` and `rss` write the pages and feeds it serves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from tests.fakes.loopback import QuietServer

Handler = Callable[[BaseHTTPRequestHandler], None]


class Site:
    """An HTTP server on 127.0.0.1; unknown paths answer 404 (robots.txt included)."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[str] = []  # path and query of every request, in arrival order
        self.user_agents: list[str] = []
        self.release = threading.Event()  # lets the slow pages answer
        self.finished: dict[str, threading.Event] = {}
        self.bytes_sent: dict[str, int] = {}
        self._lock = threading.Lock()
        self._httpd = QuietServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def requested(self, path: str) -> int:
        """How many requests reached `path` (query ignored)."""
        with self._lock:
            return sum(1 for p in self.requests if urlsplit(p).path == path)

    # Content ------------------------------------------------------------------------

    def serve(
        self, path: str, body: str | bytes, content_type: str = "text/html; charset=utf-8"
    ) -> None:
        data = body.encode() if isinstance(body, str) else body

        def answer(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)

        self.routes[path] = answer

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        def answer(h: BaseHTTPRequestHandler) -> None:
            h.send_response(status)
            h.send_header("Location", location)
            h.send_header("Content-Length", "0")
            h.end_headers()

        self.routes[path] = answer

    def endless(self, path: str, total: int) -> None:
        """A page that streams up to `total` bytes without declaring its length."""
        done = self.finished[path] = threading.Event()

        def answer(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", "text/html")
            h.end_headers()
            sent = 0
            chunk = b"<p>" + b"x" * 65_529 + b"</p>"
            try:
                while sent < total:
                    h.wfile.write(chunk)
                    sent += len(chunk)
            except ConnectionError:
                pass
            finally:
                self.bytes_sent[path] = sent
                done.set()

        self.routes[path] = answer

    def slow(self, path: str, body: str) -> None:
        """A page that answers only once `release` is set."""

        def answer(h: BaseHTTPRequestHandler) -> None:
            self.release.wait(60)
            data = body.encode()
            try:
                h.send_response(200)
                h.send_header("Content-Type", "text/html; charset=utf-8")
                h.send_header("Content-Length", str(len(data)))
                h.end_headers()
                h.wfile.write(data)
            except ConnectionError:
                pass

        self.routes[path] = answer

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with site._lock:
                    site.requests.append(self.path)
                    site.user_agents.append(self.headers.get("User-Agent", ""))
                route = site.routes.get(urlsplit(self.path).path)
                if route is None:
                    self.send_error(404)
                    return
                route(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def article(title: str, topic: str, date: str = "2025-05-03") -> str:
    """An article page with enough distinct text for extraction ("topic" makes it unique)."""
    paragraphs = [
        f"The {topic} report published this morning surprised most analysts in the region.",
        f"According to the ministry, {topic} grew faster than expected during the spring "
        "months, driven by strong demand from small and medium enterprises.",
        f"Experts interviewed about {topic} expect the trend to continue until the end of "
        "the year, although some warn that rising costs could slow it down.",
    ]
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return (
        f"<!doctype html><html><head><title>{escape(title)}</title>"
        f'<meta property="article:published_time" content="{date}T08:00:00Z"></head>'
        '<body><nav><a href="/">Home</a> <a href="/tag/economy">Economy</a></nav>'
        f"<article><h1>{escape(title)}</h1>{body}</article>"
        "<footer>Example News, all rights reserved</footer></body></html>"
    )


def rss(*items: tuple[str, str]) -> str:
    """An RSS 2.0 feed of (title, link) items."""
    entries = "".join(
        f"<item><title>{escape(title)}</title><link>{escape(link)}</link>"
        f"<pubDate>Tue, 0{i + 1} Jul 2025 10:00:00 GMT</pubDate></item>"
        for i, (title, link) in enumerate(items)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Example News</title><link>http://example.invalid/</link>{entries}"
        "</channel></rss>"
    )
