"""X-Forwarded-* headers, believed only from the proxies in FORWARDED_ALLOW_IPS.

One ASGI middleware in front of the whole app applies them, so that no route reads
them itself: from a trusted proxy, the client address and scheme come from
X-Forwarded-For and X-Forwarded-Proto (uvicorn's own code and rules) and the Host
header from X-Forwarded-Host; from anyone else, the three headers are removed unread.
Behind it, `request.client`, `request.url` and the Host header are simply the truth.

It runs in the app rather than in uvicorn because uvicorn rewrites the client address
in place: afterwards nothing can tell whether the connection came from a proxy, which
is what decides whether X-Forwarded-Host may be believed. `relaydesk serve` therefore
runs uvicorn with proxy_headers off and the same FORWARDED_ALLOW_IPS.
"""

from __future__ import annotations

import functools
import re
from typing import cast

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from relaydesk.core.config import get_settings

FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})
# A host name or a bracketed IPv6 literal, with an optional port: nothing that could
# carry a path, credentials or a second header into a URL built from it.
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])"
    r"(?::(?P<port>\d{1,5}))?"
)


def forwarded_host(value: bytes) -> bytes | None:
    """The host the proxy was asked for (the last, nearest entry), or None if not a host."""
    try:
        text = value.decode("ascii").rsplit(",", 1)[-1].strip()
    except UnicodeDecodeError:
        return None
    match = _HOST.fullmatch(text)
    if match is None or int(match.group("port") or 0) > 65535:
        return None
    return text.encode("ascii")


class ForwardedHeaders:
    """Apply X-Forwarded-For/-Proto/-Host from trusted proxies; drop them from anyone else."""

    def __init__(self, app: ASGIApp, trusted: str | None = None) -> None:
        self._app = _WithoutForwarded(app)
        self._trusted = trusted  # None: FORWARDED_ALLOW_IPS, as configured

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Apply or drop the forwarded headers, then hand the request on."""
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        trusted = get_settings().forwarded_allow_ips if self._trusted is None else self._trusted
        proxy = _proxy(self._app, trusted)
        peer = scope.get("client")
        if peer is None or peer[0] not in proxy.trusted_hosts:
            await self._app(scope, receive, send)
            return
        sent = [v for k, v in scope["headers"] if k == b"x-forwarded-host"]
        public = forwarded_host(sent[-1]) if sent else None
        if public is not None:
            others = [(k, v) for k, v in scope["headers"] if k != b"host"]
            scope = {**scope, "headers": [(b"host", public), *others]}
        # uvicorn's own code sets the client and the scheme, then hands on to the app
        # (through _WithoutForwarded, which removes the headers once they are applied).
        await cast(ASGIApp, proxy)(scope, receive, send)  # uvicorn types ASGI more narrowly


class _WithoutForwarded:
    """Hands the request on without its X-Forwarded-* headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = [(k, v) for k, v in scope["headers"] if k not in FORWARDED]
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


@functools.lru_cache(maxsize=16)
def _proxy(app: ASGIApp, trusted: str) -> ProxyHeadersMiddleware:
    """uvicorn's middleware for one setting (its list of proxies is parsed once)."""
    return ProxyHeadersMiddleware(app, trusted_hosts=trusted)  # type: ignore[arg-type]
