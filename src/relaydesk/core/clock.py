"""The current time for every decision relaydesk takes by the calendar or a deadline.

Code asks `clock.now()` instead of `datetime.now(UTC)`, so tests can freeze or move time
(`set_source`) instead of depending on the day or the month they run on. Production
never sets a source: `now()` is the system clock in UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from relaydesk.core.errors import Invalid
from relaydesk.core.i18n import N_


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


# --- Wall-clock times in a time zone (digests' send times, business hours) ---------------


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`, or Invalid (field "timezone")."""
    try:
        if not name or name.strip() != name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(
            N_("'%(name)s' is not a time zone; use an IANA name such as Europe/Warsaw"),
            params={"name": name[:64]},
            field="timezone",
        ) from None


def wall_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of wall time `at` on local `day`.

    In the autumn fold the first occurrence (fold=0). In the spring gap the wall time
    never shows; it is the first instant whose wall time is past it, i.e. the moment
    the clocks jump.
    """
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=tz).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first
    # A gap: fold=1 reads the wall time with the offset after the jump (an instant before
    # it), fold=0 with the offset before (after it). Bisect for the jump itself, to the second.
    lo = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    hi = first
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0)
