"""When a digest is due: once per local day at its time, across DST changes and restarts."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from relaydesk.core.errors import Invalid
from relaydesk.digests.schedule import due_day, next_send_at, parse_send_time, send_instant

WARSAW = ZoneInfo("Europe/Warsaw")
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def due(at: str, now: datetime, last: str | None = None, since: datetime = LONG_AGO) -> date | None:
    return due_day(at, "Europe/Warsaw", since, last, now)


def test_due_from_the_send_time_on_until_sent_that_day() -> None:
    # 08:00 in Warsaw in winter (UTC+1) is 07:00 UTC.
    assert due("08:00", utc("2025-01-15 06:59:59")) is None
    assert due("08:00", utc("2025-01-15 07:00:00")) == date(2025, 1, 15)
    # Stored state says today's went out: a restarted worker computes "not due" again.
    assert due("08:00", utc("2025-01-15 07:01"), last="2025-01-15") is None
    assert due("08:00", utc("2025-01-15 07:01"), last="2025-01-14") == date(2025, 1, 15)


def test_after_downtime_the_same_day_it_goes_out_late_never_for_past_days() -> None:
    # Down from 07:30 to 18:00 local: one late digest the same day…
    assert due("08:00", utc("2025-01-15 17:00"), last="2025-01-14") == date(2025, 1, 15)
    # …but back only after midnight: yesterday's is gone, today's waits for 08:00.
    assert due("08:00", utc("2025-01-16 05:00"), last="2025-01-14") is None
    assert due("08:00", utc("2025-01-16 07:00"), last="2025-01-14") == date(2025, 1, 16)


def test_a_recipient_added_after_todays_time_starts_tomorrow() -> None:
    created = utc("2025-01-15 14:00")  # 15:00 in Warsaw, time 08:00
    assert due("08:00", utc("2025-01-15 14:01"), since=created) is None
    assert due("08:00", utc("2025-01-15 22:59"), since=created) is None
    assert due("08:00", utc("2025-01-16 07:00"), since=created) == date(2025, 1, 16)
    # Added before today's time: today's counts.
    assert due("16:00", utc("2025-01-15 15:00"), since=created) == date(2025, 1, 15)


def test_the_local_day_not_the_utc_day_counts() -> None:
    # 00:30 in Warsaw on the 16th is 23:30 UTC on the 15th.
    assert due("00:30", utc("2025-01-15 23:30")) == date(2025, 1, 16)
    assert due("00:30", utc("2025-01-15 23:31"), last="2025-01-16") is None
    ny = due_day("07:00", "America/New_York", LONG_AGO, None, utc("2025-01-15 12:00"))
    assert ny == date(2025, 1, 15)


def test_spring_forward_shifts_the_utc_time_of_a_normal_hour() -> None:
    # 30 March 2025: clocks go from 02:00 to 03:00. 08:00 is then 06:00 UTC, not 07:00.
    assert send_instant(date(2025, 3, 29), time(8), WARSAW) == utc("2025-03-29 07:00")
    assert send_instant(date(2025, 3, 30), time(8), WARSAW) == utc("2025-03-30 06:00")
    assert due("08:00", utc("2025-03-30 05:59"), last="2025-03-29") is None
    assert due("08:00", utc("2025-03-30 06:00"), last="2025-03-29") == date(2025, 3, 30)


def test_a_time_in_the_spring_gap_fires_when_the_clocks_jump() -> None:
    # 02:30 does not exist on 30 March 2025 in Warsaw: the first valid instant after it is
    # 03:00 CEST = 01:00 UTC.
    assert send_instant(date(2025, 3, 30), time(2, 30), WARSAW) == utc("2025-03-30 01:00")
    assert due("02:30", utc("2025-03-30 00:59:59"), last="2025-03-29") is None
    assert due("02:30", utc("2025-03-30 01:00"), last="2025-03-29") == date(2025, 3, 30)
    assert due("02:30", utc("2025-03-30 01:00"), last="2025-03-30") is None
    # The day after, 02:30 exists again (CEST: 00:30 UTC).
    assert send_instant(date(2025, 3, 31), time(2, 30), WARSAW) == utc("2025-03-31 00:30")


def test_a_time_in_the_autumn_fold_fires_once_at_its_first_occurrence() -> None:
    # 26 October 2025: 02:00–03:00 happens twice (CEST, then CET).
    first = send_instant(date(2025, 10, 26), time(2, 30), WARSAW)
    assert first == utc("2025-10-26 00:30")  # 02:30 CEST
    assert due("02:30", utc("2025-10-26 00:29"), last="2025-10-25") is None
    assert due("02:30", utc("2025-10-26 00:30"), last="2025-10-25") == date(2025, 10, 26)
    # The second 02:30 (01:30 UTC, CET) finds the day served.
    assert due("02:30", utc("2025-10-26 01:30"), last="2025-10-26") is None
    # 08:00 that day is 07:00 UTC (winter time again).
    assert send_instant(date(2025, 10, 26), time(8), WARSAW) == utc("2025-10-26 07:00")


def test_next_send_at_for_display() -> None:
    now = utc("2025-03-29 12:00")  # 13:00 in Warsaw
    # Today's 08:00 went out: next is tomorrow 08:00 CEST, after the spring change.
    shown = next_send_at("08:00", "Europe/Warsaw", LONG_AGO, "2025-03-29", now)
    assert shown == utc("2025-03-30 06:00")
    # A gap time shows the instant it will really fire.
    gap = next_send_at("02:30", "Europe/Warsaw", LONG_AGO, "2025-03-29", now)
    assert gap == utc("2025-03-30 01:00")
    # Owed now (a late digest after downtime): now.
    assert next_send_at("08:00", "Europe/Warsaw", LONG_AGO, "2025-03-28", now) == now
    # Created after today's time: tomorrow.
    created = utc("2025-01-15 14:00")
    tomorrow = next_send_at("08:00", "Europe/Warsaw", created, None, created)
    assert tomorrow == utc("2025-01-16 07:00")
    # After a time-zone change to one behind, a stored date ahead of today is served.
    behind = next_send_at("08:00", "Europe/Warsaw", LONG_AGO, "2025-01-16", utc("2025-01-15 20:00"))
    assert behind == utc("2025-01-17 07:00")


@pytest.mark.parametrize("bad", ["24:00", "8", "08:60", "08:5", "ab:cd", "", "08:00:00", "-1:00"])
def test_send_times_must_be_hh_mm(bad: str) -> None:
    with pytest.raises(Invalid) as refused:
        parse_send_time(bad)
    assert "HH:MM" in refused.value.message
    assert refused.value.extra["field"] == "send_time"


def test_unknown_time_zones_are_refused() -> None:
    with pytest.raises(Invalid) as refused:
        due_day("08:00", "Europe/Atlantis", LONG_AGO, None, utc("2025-01-15 12:00"))
    assert "IANA" in refused.value.message


def test_midnight_and_last_minute_are_valid_times() -> None:
    assert parse_send_time("00:00") == time(0, 0)
    assert parse_send_time("23:59") == time(23, 59)
    assert parse_send_time(" 7:05 ") == time(7, 5)
    day = utc("2025-01-15 23:00")  # 00:00 on the 16th in Warsaw
    assert due("00:00", day) == date(2025, 1, 16)
    assert due("23:59", day - timedelta(minutes=2)) is None
    assert due("23:59", day - timedelta(minutes=1)) == date(2025, 1, 15)
