"""The current time for every decision relaydesk takes by the calendar or a deadline.

Code asks `clock.now()` instead of `datetime.now(UTC)`, so tests can freeze or move time
(`set_source`) instead of depending on the day or the month they run on. Production
never sets a source: `now()` is the system clock in UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime


def system_now() -> datetime:
    """The system clock: the current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


_source: Callable[[], datetime] = system_now


def now() -> datetime:
    """The current time, timezone-aware, in UTC (the system clock unless a test set one)."""
    return _source().astimezone(UTC)


def set_source(source: Callable[[], datetime]) -> None:
    """Take the time from `source` from now on (tests: a frozen or moving clock)."""
    global _source
    _source = source


def reset() -> None:
    """Go back to the system clock."""
    set_source(system_now)
