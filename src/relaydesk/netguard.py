"""Refuse user-given URLs that point into the server's own network (SSRF guard).

A URL typed into the panel makes this server send requests; without a guard it could
be aimed at the loopback interface, the LAN or a cloud metadata address. Deployers who
mean it (an Ollama on the same machine) switch the guard off with a setting.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class BlockedAddress(ValueError):
    """The URL resolves to a private, loopback, link-local or otherwise internal address."""


def internal_address(host: str, port: int | None = None) -> str | None:
    """The first internal address `host` resolves to, or None when every one is public."""
    try:
        infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise BlockedAddress(f"'{host}' cannot be resolved ({exc.strerror})") from None
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
        raise BlockedAddress(f"'{url}' is not an http(s) address")
    found = internal_address(parts.hostname, parts.port)
    if found is not None:
        raise BlockedAddress(
            f"{parts.hostname} resolves to the internal address {found}; requests to the "
            f"server's own network are refused unless {setting}=true"
        )
