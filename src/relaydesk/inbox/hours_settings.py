"""Business hours as stored: one row of the runtime settings, every change audited.

The pipeline reads them fresh with each decision; the panel's header reads them at most
once per CACHE_SECONDS (a change made in this process drops the copy at commit).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict

from sqlalchemy.orm import Session

from relaydesk.core import settings_store
from relaydesk.core.config import get_settings
from relaydesk.core.db import session_scope
from relaydesk.core.errors import Invalid
from relaydesk.inbox.hours import BusinessHours, clean, default

log = logging.getLogger(__name__)

HOURS_KEY = "inbox.business_hours"
CACHE_SECONDS = 5.0

_lock = threading.Lock()
_cached: tuple[float, BusinessHours] | None = None


def read(session: Session) -> BusinessHours:
    """The stored schedule, or the installation's default (switched off)."""
    data = settings_store.stored_dict(settings_store.read(session, [HOURS_KEY]).values, HOURS_KEY)
    fallback = default(get_settings().language)
    if not data:
        return fallback
    stored = {**asdict(fallback), **settings_store.known_fields(BusinessHours, data)}
    try:
        return clean(**stored)
    except (Invalid, TypeError, AttributeError):
        # Written by hand into the table: switched off rather than failing every answer.
        log.error("the stored business hours (%s) are not valid; they are ignored", HOURS_KEY)
        return fallback


def save(session: Session, config: BusinessHours, actor: str) -> BusinessHours:
    """Check and store the whole schedule (audited as inbox.business_hours.update)."""
    cleaned = clean(**asdict(config))
    settings_store.save(
        session,
        {HOURS_KEY: asdict(cleaned)},
        actor=actor,
        action="inbox.business_hours.update",
        target="business_hours",
    )
    return cleaned


def invalidate() -> None:
    """Forget the cached copy (after a commit that changed settings)."""
    global _cached
    with _lock:
        _cached = None


settings_store.on_change(invalidate)


def current() -> BusinessHours:
    """The schedule in effect, read at most once per CACHE_SECONDS."""
    global _cached
    with _lock:
        if _cached is not None and time.monotonic() - _cached[0] < CACHE_SECONDS:
            return _cached[1]
    with session_scope(write=False) as session:
        config = read(session)
    with _lock:
        _cached = (time.monotonic(), config)
    return config
