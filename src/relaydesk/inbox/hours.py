"""Business hours: a weekly schedule in one time zone, and when the business is open (pure).

Each weekday (Monday to Sunday) has up to MAX_INTERVALS opening intervals of wall-clock
time, `[open, close)` as "HH:MM" ("24:00" closes at midnight); a holiday closes its whole
local day. Every interval lies within its local day; intervals that touch (a day open
until 24:00 and the next one from 00:00) make one stretch of opening.

Daylight saving time: a wall time that happens twice (the autumn fold) means its first
occurrence; one that never happens (the spring gap) means the moment the clocks jump.

A closed period is known by the instant it began: the end of the last opening before it
(or NEVER_OPEN when there was none within LOOKBACK_DAYS). It is a function of the
schedule and the time only, so every process and every restart names the same period:
the out-of-office answer is owed once per conversation per such instant.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from relaydesk.core.clock import wall_instant, zone
from relaydesk.core.errors import Invalid
from relaydesk.core.i18n import N_

WEEKDAYS = (
    N_("Monday"),
    N_("Tuesday"),
    N_("Wednesday"),
    N_("Thursday"),
    N_("Friday"),
    N_("Saturday"),
    N_("Sunday"),
)
MAX_INTERVALS = 4
MAX_HOLIDAYS = 366
MAX_MESSAGE = 1600  # Twilio's limit for one message body
LOOKBACK_DAYS = 400  # how far back a closed period's start is looked for (and ahead, an opening)
NEVER_OPEN = datetime(1970, 1, 1, tzinfo=UTC)  # the period of a schedule never open lately
DEFAULT_TIMEZONES = {"en": "UTC", "pl": "Europe/Warsaw"}
DEFAULT_MESSAGES = {
    "en": "Thanks for your message. We're closed right now and will answer as soon as we open.",
    "pl": "Dziękujemy za wiadomość. Teraz mamy zamknięte; odpowiemy, gdy tylko otworzymy.",
}
_DAY_MINUTES = 24 * 60

Interval = list[str]  # ["09:00", "17:00"]


def _office_week() -> list[list[Interval]]:
    return [[["09:00", "17:00"]] for _ in range(5)] + [[], []]


@dataclass(frozen=True)
class BusinessHours:
    """The schedule as stored: seven weekdays' intervals, holidays, the answer outside them."""

    enabled: bool = False
    timezone: str = "UTC"
    days: list[list[Interval]] = field(default_factory=_office_week)
    holidays: list[str] = field(default_factory=list)
    message: str = DEFAULT_MESSAGES["en"]

    @property
    def answers(self) -> bool:
        """True when customers get an out-of-office answer outside the hours."""
        return self.enabled and bool(self.message.strip())


def default(language: str) -> BusinessHours:
    """A fresh installation's schedule (off): weekdays 09:00–17:00, in its language."""
    return BusinessHours(
        timezone=DEFAULT_TIMEZONES.get(language, "UTC"),
        message=DEFAULT_MESSAGES.get(language, DEFAULT_MESSAGES["en"]),
    )


# --- Checking a schedule -------------------------------------------------------------


def minutes_of(text: str, day: int, *, closing: bool) -> int:
    """'HH:MM' as minutes after midnight (24:00 only as a closing time), or Invalid."""
    hours, sep, minutes = text.partition(":")
    if sep and len(hours) == 2 and len(minutes) == 2 and (hours + minutes).isdigit():
        value = int(hours) * 60 + int(minutes)
        if int(minutes) < 60 and (value < _DAY_MINUTES or (closing and value == _DAY_MINUTES)):
            return value
    raise Invalid(
        N_("%(day)s: '%(text)s' is not a time; write HH:MM from 00:00 to 24:00"),
        params={"day": WEEKDAYS[day], "text": text[:20]},
        field="days",
    )


def clean_day(intervals: Sequence[Sequence[str]], day: int) -> list[Interval]:
    """One weekday's intervals as stored: each open before close, sorted, none overlapping."""
    if len(intervals) > MAX_INTERVALS:
        raise Invalid(
            N_("%(day)s: at most %(max)s opening intervals a day"),
            params={"day": WEEKDAYS[day], "max": MAX_INTERVALS},
            field="days",
        )
    spans: list[tuple[int, int]] = []
    for pair in intervals:
        if len(pair) != 2:
            raise Invalid(
                N_("%(day)s: an opening interval is a pair of times [open, close]"),
                params={"day": WEEKDAYS[day]},
                field="days",
            )
        start = minutes_of(pair[0], day, closing=False)
        end = minutes_of(pair[1], day, closing=True)
        if start >= end:
            raise Invalid(
                N_("%(day)s: %(open)s–%(close)s opens after it closes"),
                params={"day": WEEKDAYS[day], "open": pair[0], "close": pair[1]},
                field="days",
            )
        spans.append((start, end))
    spans.sort()
    for (_, first_end), (second_start, _) in pairwise(spans):
        if second_start < first_end:
            raise Invalid(
                N_("%(day)s: the opening intervals overlap"),
                params={"day": WEEKDAYS[day]},
                field="days",
            )
    return [[_hhmm(start), _hhmm(end)] for start, end in spans]


def clean_holidays(holidays: Sequence[str]) -> list[str]:
    """Holidays as stored: distinct YYYY-MM-DD dates in order."""
    if len(holidays) > MAX_HOLIDAYS:
        raise Invalid(
            N_("At most %(max)s holidays"), params={"max": MAX_HOLIDAYS}, field="holidays"
        )
    days: set[date] = set()
    for text in holidays:
        try:
            if len(text.strip()) != 10:
                raise ValueError(text)
            days.add(date.fromisoformat(text.strip()))
        except ValueError:
            raise Invalid(
                N_("'%(text)s' is not a date; write holidays as YYYY-MM-DD"),
                params={"text": text[:20]},
                field="holidays",
            ) from None
    return [day.isoformat() for day in sorted(days)]


def clean_message(message: str) -> str:
    """The out-of-office text as stored (at most MAX_MESSAGE characters, storable)."""
    if len(message) > MAX_MESSAGE:
        raise Invalid(
            N_("The out-of-office message has at most %(max)s characters"),
            params={"max": MAX_MESSAGE},
            field="message",
        )
    # PostgreSQL cannot store NUL or a lone surrogate in text.
    if any(ch == "\x00" or unicodedata.category(ch) == "Cs" for ch in message):
        raise Invalid(
            N_("The out-of-office message contains a character that cannot be sent (NUL)"),
            params={},
            field="message",
        )
    return message


def clean(
    *,
    enabled: bool,
    timezone: str,
    days: Sequence[Sequence[Sequence[str]]],
    holidays: Sequence[str],
    message: str,
) -> BusinessHours:
    """A whole schedule checked and normalised, or Invalid saying what is wrong."""
    zone(timezone)
    if len(days) != len(WEEKDAYS):
        raise Invalid(
            N_("Business hours list the opening intervals of 7 weekdays, Monday to Sunday"),
            params={},
            field="days",
        )
    return BusinessHours(
        enabled=enabled,
        timezone=timezone,
        days=[clean_day(intervals, day) for day, intervals in enumerate(days)],
        holidays=clean_holidays(holidays),
        message=clean_message(message),
    )


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# --- Open or closed ------------------------------------------------------------------


def is_open(config: BusinessHours, at: datetime) -> bool:
    """True when `at` falls in an opening interval (the `enabled` switch is the caller's)."""
    return closed_period_start(config, at) is None


def closed_period_start(config: BusinessHours, at: datetime) -> datetime | None:
    """None while open; else the UTC instant the closed period around `at` began.

    That is the end of the last opening before `at`, or NEVER_OPEN when there was none
    in the LOOKBACK_DAYS before it.
    """
    if not any(config.days):
        return NEVER_OPEN
    tz = zone(config.timezone)
    today = at.astimezone(tz).date()
    for back in range(LOOKBACK_DAYS + 1):
        for start, end in reversed(_day_intervals(config, tz, today - timedelta(days=back))):
            if start <= at < end:
                return None
            if end <= at:
                return end
    return NEVER_OPEN


def next_opening(config: BusinessHours, at: datetime) -> datetime | None:
    """When the business next opens after `at` (None: not within LOOKBACK_DAYS).

    Asked while open, it is the opening after the coming closing.
    """
    for start, _end in _stretches(config, at):
        if start > at:
            return start
    return None


def next_closing(config: BusinessHours, at: datetime) -> datetime | None:
    """When the opening around `at` ends (None: closed at `at`, or open beyond the horizon)."""
    if not any(config.days):
        return None
    horizon = _horizon(at, zone(config.timezone))
    for start, end in _stretches(config, at):
        if start <= at < end:
            return None if end == horizon else end
        if start > at:
            return None
    return None


@dataclass(frozen=True)
class State:
    """Open or closed at a moment, and when that changes (None: not in sight)."""

    open: bool
    change: datetime | None
    tz: ZoneInfo


def state(config: BusinessHours, at: datetime) -> State:
    """Whether the business is open at `at`, and until or from when."""
    tz = zone(config.timezone)
    if is_open(config, at):
        return State(True, next_closing(config, at), tz)
    return State(False, next_opening(config, at), tz)


def _stretches(config: BusinessHours, at: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Openings (touching intervals merged) from the local day of `at` to the horizon."""
    if not any(config.days):
        return
    tz = zone(config.timezone)
    first = at.astimezone(tz).date()
    current: tuple[datetime, datetime] | None = None
    for ahead in range(LOOKBACK_DAYS + 1):
        for start, end in _day_intervals(config, tz, first + timedelta(days=ahead)):
            if current is not None and start <= current[1]:
                current = (current[0], max(end, current[1]))
                continue
            if current is not None:
                yield current
            current = (start, end)
    if current is not None:
        yield current


def _horizon(at: datetime, tz: ZoneInfo) -> datetime:
    """The end of the last local day `_stretches` looks at."""
    last = at.astimezone(tz).date() + timedelta(days=LOOKBACK_DAYS + 1)
    return _instant(last, 0, tz)


def _day_intervals(
    config: BusinessHours, tz: ZoneInfo, day: date
) -> list[tuple[datetime, datetime]]:
    """The UTC openings of one local day, in order (none on a holiday)."""
    if day.isoformat() in config.holidays:
        return []
    spans = []
    for opens, closes in config.days[day.weekday()]:
        start = _instant(day, minutes_of(opens, day.weekday(), closing=False), tz)
        end = _instant(day, minutes_of(closes, day.weekday(), closing=True), tz)
        if start < end:  # an interval inside one spring gap never opens
            spans.append((start, end))
    return spans


def _instant(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    """The UTC instant of a wall time on a local day (see the module's DST rules)."""
    if minutes == _DAY_MINUTES:
        day, minutes = day + timedelta(days=1), 0
    return wall_instant(day, time(minutes // 60, minutes % 60), tz)
