"""Refuse user-given URLs that point into the server's own network (SSRF guard).

A URL typed into the panel makes this server send requests; without a guard it could
be aimed at the loopback interface, the LAN or a cloud metadata address. Deployers who
mean it (an Ollama on the same machine) switch the guard off with a setting.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from relaydesk.core.i18n import N_


class BlockedAddress(ValueError):
    """The URL resolves to a private, loopback, link-local or otherwise internal address.

    `str()` is the English message. Raised with `params`, the message is an N_-marked
    template: `template` and `params` let a caller re-raise it as a RelaydeskError the
    panel shows in the reader's language (`Invalid(exc.template, params=exc.params)`).
    """

    def __init__(self, message: str, /, *, params: Mapping[str, Any] | None = None) -> None:
        self.template = message if params is not None else None
        self.params = dict(params or {})
        if params is not None:
            message = message % self.params
        super().__init__(message)


class Unresolvable(BlockedAddress):
    """The host name does not resolve: nothing can be sent to it now."""


def internal_address(host: str, port: int | None = None) -> str | None:
    """The first internal address `host` resolves to, or None when every one is public."""
    try:
        infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise Unresolvable(
            N_("'%(host)s' cannot be resolved (%(reason)s)"),
            params={"host": host, "reason": exc.strerror},
        ) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            return str(address)
    return None


def check_public_url(url: str, *, setting: str) -> None:
    """Raise BlockedAddress when `url` leads into an internal network; `setting` allows it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedAddress(N_("'%(url)s' is not an http(s) address"), params={"url": url})
    found = internal_address(parts.hostname, parts.port)
    if found is not None:
        raise BlockedAddress(
            N_(
                "%(host)s resolves to the internal address %(address)s; requests to the "
                "server's own network are refused unless %(setting)s=true"
            ),
            params={"host": parts.hostname, "address": found, "setting": setting},
        )


def check_peer(event: str, info: dict[str, Any], *, setting: str) -> None:
    """httpcore trace hook: refuse (BlockedAddress) a new connection to an internal address.

    Called once the TCP connection stands and before the request is written, so nothing
    is sent to such an address, whatever the name resolved to when it was checked.
    """
    if event != "connection.connect_tcp.complete":
        return
    stream = info.get("return_value")
    if stream is None:
        return
    peer = stream.get_extra_info("server_addr")
    found = internal_address(str(peer[0])) if peer else None
    if peer and found is None:
        return
    stream.close()
    if found:
        raise BlockedAddress(
            N_(
                "the connection reached the internal address %(address)s; requests to the "
                "server's own network are refused unless %(setting)s=true"
            ),
            params={"address": found, "setting": setting},
        )
    raise BlockedAddress(
        N_(
            "the connection reached an address that cannot be checked; requests to the "
            "server's own network are refused unless %(setting)s=true"
        ),
        params={"setting": setting},
    )


class BlockedConnection(httpx.ConnectError):
    """A connection GuardedTransport refused; clients see it as a failed connection."""


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport that sends nothing over a connection to an internal address.

    The check is on the address each new connection really reached, so a name that
    resolves to a public address for a check and to an internal one a moment later
    (DNS rebinding), or a redirect into the network, gets nothing either.
    """

    def __init__(self, *, setting: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._setting = setting

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` over a connection whose peer has been checked."""
        request.extensions = {**request.extensions, "trace": self._trace}
        try:
            return super().handle_request(request)
        except BlockedAddress as exc:
            raise BlockedConnection(str(exc), request=request) from None

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        check_peer(event, info, setting=self._setting)
