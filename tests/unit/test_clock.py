"""relaydesk's clock: the system time in UTC, unless a test froze or moved it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from relaydesk.core import clock as core_clock
from relaydesk.core.db import utcnow
from tests.conftest import FrozenClock


def test_now_is_aware_utc_and_follows_the_system_clock() -> None:
    before = datetime.now(UTC)
    now = core_clock.now()
    assert now.tzinfo is UTC
    assert before <= now <= datetime.now(UTC)


def test_a_frozen_clock_holds_moves_and_is_given_in_utc(clock: FrozenClock) -> None:
    warsaw = datetime(2025, 3, 30, 3, 0, tzinfo=ZoneInfo("Europe/Warsaw"))
    clock.freeze(warsaw)
    assert core_clock.now() == utcnow() == datetime(2025, 3, 30, 1, 0, tzinfo=UTC)
    assert core_clock.now().tzinfo is UTC
    clock.move(timedelta(hours=-2))
    assert utcnow() == datetime(2025, 3, 29, 23, 0, tzinfo=UTC)


def test_the_fixture_gives_the_system_clock_back() -> None:
    # Runs after the test above (same module, in order): no frozen time leaks out.
    assert abs(core_clock.now() - datetime.now(UTC)) < timedelta(seconds=5)
