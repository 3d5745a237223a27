"""Business hours as stored: one row of the runtime settings, every change audited.

The pipeline reads them fresh with each decision; the panel's header reads them at most
once per CACHE_SECONDS (a change made in this process drops the copy at commit).
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from sqlalchemy.orm import Session

from relaydesk.core import settings_store
from relaydesk.core.config import get_settings
from relaydesk.core.errors import Invalid
from relaydesk.inbox.hours import BusinessHours, clean, default

log = logging.getLogger(__name__)

HOURS_KEY = "inbox.business_hours"
CACHE_SECONDS = 5.0


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


_current = settings_store.Cached(read, CACHE_SECONDS)


def current() -> BusinessHours:
    """The schedule in effect, read at most once per CACHE_SECONDS."""
    return _current.get()
