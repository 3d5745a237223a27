"""The period a KPI request covers: a month, a range of whole days, or the clock's month."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from relaydesk.core.errors import Invalid
from relaydesk.voicebot import kpis
from tests.conftest import FrozenClock


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_period_defaults_to_the_current_month_and_includes_the_last_day(
    clock: FrozenClock,
) -> None:
    now = clock.freeze(utc(2025, 3, 31, 23, 59, 59))  # the last second of a month
    start, end = kpis.period_of(None, None, None)
    today = now.date()
    assert start.date() == today.replace(day=1) and start <= now < end
    assert (start, end) == (utc(2025, 3, 1), utc(2025, 4, 1))
    assert kpis.period_of(None, date(2025, 3, 5), date(2025, 3, 5)) == (
        datetime(2025, 3, 5, tzinfo=UTC),
        datetime(2025, 3, 6, tzinfo=UTC),
    )
    assert kpis.period_of("2024-12", None, None) == (
        datetime(2024, 12, 1, tzinfo=UTC),
        datetime(2025, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(Invalid):
        kpis.period_of("2024-00", None, None)


def test_a_range_without_an_end_runs_to_today_and_without_a_start_from_the_first(
    clock: FrozenClock,
) -> None:
    clock.freeze(utc(2025, 3, 17, 12))
    assert kpis.period_of(None, date(2025, 3, 10), None) == (utc(2025, 3, 10), utc(2025, 3, 18))
    # A start after today is still a whole day.
    assert kpis.period_of(None, date(2025, 3, 20), None) == (utc(2025, 3, 20), utc(2025, 3, 21))
    assert kpis.period_of(None, None, date(2025, 2, 14)) == (utc(2025, 2, 1), utc(2025, 2, 15))


def test_a_range_of_a_year_and_a_day_is_the_longest() -> None:
    assert kpis.period_of(None, date(2024, 1, 1), date(2024, 12, 31)) == (
        utc(2024, 1, 1),
        utc(2025, 1, 1),
    )
    with pytest.raises(Invalid) as refused:
        kpis.period_of(None, date(2024, 1, 1), date(2025, 1, 1))
    assert refused.value.extra["field"] == "to"


@pytest.mark.parametrize(
    ("month", "date_from", "field"),
    [
        ("2025-03", date(2025, 3, 1), "month"),
        ("2025-13", None, "month"),
        ("2025-3", None, "month"),
        ("march", None, "month"),
    ],
)
def test_a_bad_period_names_the_field_at_fault(
    month: str, date_from: date | None, field: str
) -> None:
    with pytest.raises(Invalid) as refused:
        kpis.period_of(month, date_from, None)
    assert refused.value.extra["field"] == field


def test_from_after_to_is_refused() -> None:
    with pytest.raises(Invalid) as refused:
        kpis.period_of(None, date(2025, 3, 10), date(2025, 3, 1))
    assert refused.value.extra["field"] == "from"


def test_december_ends_at_the_next_new_year() -> None:
    assert kpis.month_period("2025-12") == (utc(2025, 12, 1), utc(2026, 1, 1))


def test_rates_have_one_decimal_and_nothing_of_nothing_is_zero() -> None:
    assert kpis.rate(1, 3) == 33.3
    assert kpis.rate(2, 3) == 66.7
    assert kpis.rate(0, 0) == 0.0
