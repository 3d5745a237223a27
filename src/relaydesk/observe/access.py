"""The access log (ACCESS_LOG=true): one line per HTTP request, written by relaydesk.

Method, path, status, duration and the client's address (after the trusted proxies'
X-Forwarded-For is applied). Never the query string, headers or bodies, and the
capability in a published media link (/m/<token>) becomes ***, so the log holds no secret.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("relaydesk.access")

# Paths whose last part is a secret (a media link Twilio fetches without signing in).
SECRET_TAILS = ("/m/",)


def loggable_path(path: str) -> str:
    """The path with any secret part replaced and control characters escaped."""
    for prefix in SECRET_TAILS:
        if path.startswith(prefix) and len(path) > len(prefix):
            path = prefix + "***"
    return path.encode("unicode_escape", "backslashreplace").decode("ascii")[:300]


class AccessLog:
    """ASGI middleware that logs each HTTP request once its response has started."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            ms = round((time.perf_counter() - started) * 1000, 1)
            client = (scope.get("client") or ("-", 0))[0]
            path = loggable_path(scope.get("path", ""))
            method = scope.get("method", "-")
            log.info(
                "%s %s %s %s %.1fms",
                client,
                method,
                path,
                status or "-",
                ms,
                extra={
                    "client": client,
                    "method": method,
                    "path": path,
                    "status": status,
                    "ms": ms,
                },
            )
