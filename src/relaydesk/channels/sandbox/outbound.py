"""The emulator's outbound HTTP (status callbacks, webhooks, media) behind the network guard.

A StatusCallback or MediaUrl is whatever a caller of the emulator's API typed, so like
any user-given URL it may not lead into the server's own network (loopback, LAN,
link-local, cloud metadata). relaydesk's own address is where the emulator is meant to
call and is always allowed; SANDBOX_ALLOW_PRIVATE_NETWORKS allows the rest. A name is
checked before connecting and the address actually connected to is checked again before
anything is sent: a name can resolve elsewhere the second time (DNS rebinding).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util import Url, parse_url

from relaydesk.core import netguard
from relaydesk.core.config import Settings

log = logging.getLogger(__name__)

SETTING = "SANDBOX_ALLOW_PRIVATE_NETWORKS"
DEFAULT_PORTS = {"http": 80, "https": 443}


def shown(url: str) -> str:
    """`url` for logs and errors: no credentials, query or fragment; control characters escaped."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(an invalid address)"
    # Secrets hide in credentials and queries; a CR/LF would forge a log line.
    netloc = f"[{host}]" if ":" in host else host
    text = urlunsplit((parts.scheme, f"{netloc}:{port}" if port else netloc, parts.path, "", ""))
    return "".join(f"%{ord(ch):02X}" if _unsafe(ch) else ch for ch in text)


def _unsafe(ch: str) -> bool:
    # Whitespace, control characters and backslashes are where URL parsers disagree.
    return ch.isspace() or ord(ch) < 0x20 or ch in "\x7f\\"


def _parsed(url: str) -> Url:
    """The URL as urllib3 will connect to it; BlockedAddress when it cannot be one."""
    if any(_unsafe(ch) for ch in url):
        raise netguard.BlockedAddress("not a valid address (spaces, control characters or \\)")
    try:
        parts = parse_url(url)
    except ValueError:
        raise netguard.BlockedAddress("not a valid address") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.host:
        raise netguard.BlockedAddress("not an http(s) address")
    return parts


def _origin(parts: Url) -> tuple[str, str, int]:
    scheme = parts.scheme or "http"
    return scheme, (parts.host or "").lower(), parts.port or DEFAULT_PORTS[scheme]


def _refuse_internal_peer(sock: socket.socket) -> None:
    """Close and refuse a connection that reached an internal address after all."""
    peer = str(sock.getpeername()[0])
    if netguard.internal_address(peer) is not None:
        sock.close()
        raise netguard.BlockedAddress(
            f"the connection reached the internal address {peer}; requests to the server's "
            f"own network are refused unless {SETTING}=true"
        )


class _CheckedHTTPConnection(HTTPConnection):
    """Checks the peer once the TCP connection stands, before the request is written."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _refuse_internal_peer(sock)
        return sock


class _CheckedHTTPSConnection(HTTPSConnection):
    """Checks the peer before the TLS handshake and the request."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _refuse_internal_peer(sock)
        return sock


class _CheckedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class Outbound:
    """The emulator's HTTP client: every URL passes the network guard before it is called.

    relaydesk's own addresses are `webhook_base` (a standalone emulator's relaydesk),
    settings.base_url and, inside relaydesk, the public base URL saved in the panel
    (`panel_base`).
    """

    def __init__(
        self,
        settings: Settings,
        webhook_base: str | None = None,
        panel_base: Callable[[], str | None] | None = None,
        maxsize: int = 8,
    ) -> None:
        self.webhook_base = webhook_base
        self._settings = settings
        self._panel_base = panel_base
        # relaydesk itself (or, when allowed, any address) is reached as configured;
        # anything else only through connections that check the address they reached.
        self._open = urllib3.PoolManager(maxsize=maxsize)
        self._checked = urllib3.PoolManager(maxsize=maxsize)
        self._checked.pool_classes_by_scheme = {
            "http": _CheckedHTTPPool,
            "https": _CheckedHTTPSPool,
        }

    def check(self, url: str) -> None:
        """Raise BlockedAddress (Unresolvable for unknown names) unless `url` may be called."""
        self._pool_for(url)

    def request(self, method: str, url: str, **kwargs: Any) -> urllib3.BaseHTTPResponse:
        """One request, no redirect followed and no retry; BlockedAddress if refused."""
        pool = self._pool_for(url)
        return pool.request(method, url, redirect=False, retries=False, **kwargs)

    def close(self) -> None:
        """Close every pooled connection."""
        self._open.clear()
        self._checked.clear()

    def _pool_for(self, url: str) -> urllib3.PoolManager:
        parts = _parsed(url)
        if self._settings.sandbox_allow_private_networks or self._own(parts):
            return self._open
        try:
            netguard.check_public_url(url, setting=SETTING)
        except netguard.BlockedAddress:
            raise
        except ValueError:  # a port that is not a number
            raise netguard.BlockedAddress("not a valid address") from None
        return self._checked

    def _own(self, parts: Url) -> bool:
        """True when the URL is on relaydesk's own address (origin and path prefix)."""
        origin = _origin(parts)
        path = parts.path or "/"
        for base in self._own_bases():
            try:
                own = parse_url(base)
            except ValueError:
                continue
            if own.scheme not in DEFAULT_PORTS or _origin(own) != origin:
                continue
            prefix = (own.path or "").rstrip("/")
            if path == prefix or path.startswith(prefix + "/"):
                return True
        return False

    def _own_bases(self) -> Iterator[str]:
        if self.webhook_base:
            yield self.webhook_base
        yield self._settings.base_url
        if self._panel_base is None:
            return
        try:
            found = self._panel_base()
        except Exception:
            # The panel's value lives in the database; without it only the others count.
            log.warning("sandbox: could not read the panel's public base URL", exc_info=True)
            return
        if found:
            yield found
