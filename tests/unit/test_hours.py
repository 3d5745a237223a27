"""Business hours as pure schedule logic: open or closed, holidays, periods, DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from relaydesk.core.errors import Invalid
from relaydesk.inbox import hours
from relaydesk.inbox.hours import (
    NEVER_OPEN,
    BusinessHours,
    clean,
    closed_period_start,
    is_open,
    next_closing,
    next_opening,
)

WARSAW = "Europe/Warsaw"
OFFICE = [[["09:00", "17:00"]]] * 5 + [[], []]


def week(*days: list[list[str]]) -> list[list[list[str]]]:
    """Seven weekdays from Monday, the ones not given closed."""
    return [list(d) for d in days] + [[] for _ in range(7 - len(days))]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def schedule(**fields: object) -> BusinessHours:
    base: dict[str, object] = {
        "enabled": True,
        "timezone": WARSAW,
        "days": OFFICE,
        "holidays": [],
        "message": "Closed",
    }
    return clean(**{**base, **fields})  # type: ignore[arg-type]


# Monday 2025-03-17: Warsaw is UTC+1 (CET) until the last Sunday of March.
MONDAY_NOON = utc("2025-03-17T11:00")


def test_open_during_an_interval_and_closed_outside_it() -> None:
    office = schedule()
    assert is_open(office, MONDAY_NOON)
    assert is_open(office, utc("2025-03-17T08:00"))  # 09:00 in Warsaw opens
    assert not is_open(office, utc("2025-03-17T07:59"))
    assert not is_open(office, utc("2025-03-17T16:00"))  # 17:00 in Warsaw has closed
    assert not is_open(office, utc("2025-03-22T11:00"))  # Saturday


def test_the_closed_period_began_at_the_last_closing() -> None:
    office = schedule()
    assert closed_period_start(office, MONDAY_NOON) is None
    evening = closed_period_start(office, utc("2025-03-17T20:00"))
    next_morning = closed_period_start(office, utc("2025-03-18T07:30"))
    assert evening == next_morning == utc("2025-03-17T16:00")  # one night, one period
    # The whole weekend is one period, from Friday's closing.
    friday = utc("2025-03-21T16:00")
    assert closed_period_start(office, utc("2025-03-22T10:00")) == friday
    assert closed_period_start(office, utc("2025-03-24T07:59")) == friday


def test_a_lunch_break_is_a_closed_period_of_its_own() -> None:
    split = schedule(days=week([["09:00", "12:00"], ["13:00", "17:00"]]))
    lunch = closed_period_start(split, utc("2025-03-17T11:30"))
    evening = closed_period_start(split, utc("2025-03-17T17:00"))
    assert lunch == utc("2025-03-17T11:00") and evening == utc("2025-03-17T16:00")


def test_a_holiday_is_closed_all_day_and_joins_the_period_around_it() -> None:
    office = schedule(holidays=["2025-03-24"])  # Monday
    assert not is_open(office, utc("2025-03-24T11:00"))
    friday = utc("2025-03-21T16:00")
    assert closed_period_start(office, utc("2025-03-24T11:00")) == friday
    assert next_opening(office, utc("2025-03-22T11:00")) == utc("2025-03-25T08:00")


def test_next_opening_and_closing() -> None:
    office = schedule()
    assert next_closing(office, MONDAY_NOON) == utc("2025-03-17T16:00")
    assert next_opening(office, utc("2025-03-17T20:00")) == utc("2025-03-18T08:00")
    assert next_opening(office, utc("2025-03-21T18:00")) == utc("2025-03-24T08:00")  # Monday
    assert next_closing(office, utc("2025-03-21T18:00")) is None  # closed now
    # Asked while open: the opening after this one.
    assert next_opening(office, MONDAY_NOON) == utc("2025-03-18T08:00")


def test_days_open_until_midnight_and_from_midnight_are_one_opening() -> None:
    late = schedule(days=week([["18:00", "24:00"]], [["00:00", "02:00"]]))
    monday_late = utc("2025-03-17T22:30")
    assert is_open(late, monday_late) and is_open(late, utc("2025-03-17T23:00"))  # 00:00
    assert next_closing(late, monday_late) == utc("2025-03-18T01:00")  # Tuesday 02:00
    assert closed_period_start(late, utc("2025-03-18T05:00")) == utc("2025-03-18T01:00")


def test_always_open_never_closes_and_an_empty_week_was_never_open() -> None:
    always = schedule(days=[[["00:00", "24:00"]]] * 7)
    assert is_open(always, MONDAY_NOON)
    assert next_closing(always, MONDAY_NOON) is None
    empty = schedule(days=week())
    assert not is_open(empty, MONDAY_NOON)
    # Never open: one fixed period, so the out-of-office answer still goes once.
    assert closed_period_start(empty, MONDAY_NOON) == NEVER_OPEN
    assert closed_period_start(empty, MONDAY_NOON + timedelta(days=30)) == NEVER_OPEN
    assert next_opening(empty, MONDAY_NOON) is None


def test_a_year_of_holidays_looks_back_no_further_than_the_limit() -> None:
    start = datetime(2025, 1, 1)
    year = [(start + timedelta(days=n)).date().isoformat() for n in range(366)]
    closed = schedule(holidays=year)
    at = utc("2025-06-02T10:00")
    assert closed_period_start(closed, at) == utc("2024-12-31T16:00")
    assert next_opening(closed, at) == utc("2026-01-02T08:00")


def test_daylight_saving_time_in_warsaw() -> None:
    office = schedule(days=[[["09:00", "17:00"]]] * 7)
    # Spring forward on Sunday 2025-03-30: 09:00 is 08:00 UTC on Saturday, 07:00 on Sunday.
    assert next_opening(office, utc("2025-03-29T20:00")) == utc("2025-03-30T07:00")
    assert closed_period_start(office, utc("2025-03-30T06:30")) == utc("2025-03-29T16:00")
    assert is_open(office, utc("2025-03-30T07:00"))
    # Fall back on Sunday 2025-10-26: 17:00 is 15:00 UTC on Saturday, 16:00 on Sunday.
    assert closed_period_start(office, utc("2025-10-26T07:00")) == utc("2025-10-25T15:00")
    assert next_closing(office, utc("2025-10-26T12:00")) == utc("2025-10-26T16:00")
    # A day open 00:00–24:00 lasts 23 hours in spring and 25 in autumn.
    sunday = schedule(days=week([], [], [], [], [], [], [["00:00", "24:00"]]))
    assert next_closing(sunday, utc("2025-03-30T12:00")) - utc("2025-03-29T23:00") == timedelta(
        hours=23
    )
    assert next_closing(sunday, utc("2025-10-26T12:00")) - utc("2025-10-25T22:00") == timedelta(
        hours=25
    )


def test_an_opening_in_the_spring_gap_opens_when_the_clocks_jump() -> None:
    night = schedule(days=week([], [], [], [], [], [], [["02:30", "05:00"]]))
    # 02:30 never happens on 2025-03-30 in Warsaw: it opens at 03:00 CEST (01:00 UTC).
    assert next_opening(night, utc("2025-03-29T12:00")) == utc("2025-03-30T01:00")


def test_a_schedule_in_another_zone() -> None:
    office = schedule(timezone="America/New_York")
    # 09:00 in New York on 2025-03-17 (EDT, UTC-4) is 13:00 UTC.
    assert not is_open(office, MONDAY_NOON)
    assert is_open(office, utc("2025-03-17T13:00"))


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"timezone": "Mars/Olympus"}, "not a time zone"),
        ({"timezone": ""}, "not a time zone"),
        ({"days": week([["25:00", "26:00"]])}, "'25:00' is not a time"),
        ({"days": week([["9:00", "17:00"]])}, "'9:00' is not a time"),
        ({"days": week([["24:00", "24:00"]])}, "'24:00' is not a time"),
        ({"days": week([["17:00", "09:00"]])}, "opens after it closes"),
        ({"days": week([["09:00", "13:00"], ["12:00", "17:00"]])}, "overlap"),
        ({"days": week([["09:00", "10:00"]] * 5)}, "at most 4"),
        ({"days": week([["09:00"]])}, "pair"),
        ({"days": OFFICE[:6]}, "7 weekdays"),
        ({"holidays": ["2025-02-30"]}, "not a date"),
        ({"holidays": ["tomorrow"]}, "not a date"),
        ({"holidays": ["2025-01-01"] * 367}, "At most 366"),
        ({"message": "x" * 1601}, "at most 1600"),
        ({"message": "a\x00b"}, "NUL"),
    ],
)
def test_a_bad_schedule_is_refused_saying_what_is_wrong(
    fields: dict[str, object], words: str
) -> None:
    with pytest.raises(Invalid) as refused:
        schedule(**fields)
    assert words in refused.value.message
    assert refused.value.template is not None  # the panel can translate it


def test_a_schedule_is_stored_in_order_and_without_repeats() -> None:
    tidy = schedule(
        days=week(
            [["13:00", "17:00"], ["09:00", "12:00"]], [["09:00", "12:00"], ["12:00", "24:00"]]
        ),
        holidays=["2025-12-26", "2025-12-25", "2025-12-26"],
    )
    assert tidy.days[0] == [["09:00", "12:00"], ["13:00", "17:00"]]
    assert tidy.days[1] == [["09:00", "12:00"], ["12:00", "24:00"]]  # touching is allowed
    assert tidy.holidays == ["2025-12-25", "2025-12-26"]


def test_the_default_is_off_with_office_hours_in_the_installations_language() -> None:
    polish = hours.default("pl")
    assert not polish.enabled and not polish.answers
    assert polish.timezone == WARSAW
    assert polish.days[0] == [["09:00", "17:00"]] and polish.days[5] == []
    assert "Dziękujemy" in polish.message
    assert "closed right now" in hours.default("en").message
