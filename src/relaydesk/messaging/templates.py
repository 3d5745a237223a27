"""Approved WhatsApp templates from Twilio's Content API, cached briefly."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from typing import Any

from relaydesk.channels.twilio.gateway import GatewayError
from relaydesk.core.errors import RelaydeskError
from relaydesk.core.i18n import N_
from relaydesk.messaging.delivery import get_gateway

CACHE_SECONDS = 60.0
_lock = threading.Lock()
_cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}


class TemplatesUnavailable(RelaydeskError):
    """Twilio's Content API could not be read."""

    status_code = 502
    code = "twilio_unavailable"


def list_templates(*, fresh: bool = False) -> list[dict[str, Any]]:
    """The account's content templates: sid, name, language, variables and the text."""
    gateway = get_gateway()
    key = str(id(gateway))
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        if hit is not None and not fresh and now - hit[0] < CACHE_SECONDS:
            return hit[1]
    try:
        found = [asdict(t) for t in gateway.content_templates()]
    except GatewayError as exc:
        raise TemplatesUnavailable(
            N_("Twilio's template list could not be read: %(reason)s"), params={"reason": str(exc)}
        ) from None
    found.sort(key=lambda t: (t["friendly_name"].lower(), t["sid"]))
    with _lock:
        _cache[key] = (now, found)
    return found


def forget() -> None:
    """Drop the cache (tests, or after the account changes)."""
    with _lock:
        _cache.clear()
