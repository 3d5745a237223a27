"""The voice-bot schedules: which range the daily sync asks for, and when archives run."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from relaydesk.voicebot import export, service, settings, tasks
from tests.conftest import FrozenClock


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch, server: Any) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(
        settings, "read", lambda session: settings.VoicebotConfig(["agent_1"], "xi-key-1234")
    )
    monkeypatch.setattr(service, "start", lambda session, **kw: calls.append(kw))
    return calls


@pytest.mark.parametrize(
    ("today", "expected_from"),
    [
        (datetime(2026, 3, 17, 2, 0, tzinfo=UTC), date(2026, 3, 1)),
        # Days 1–5: from the previous month's first day, so its last evening is synced
        # before the 03:00 archive of that month.
        (datetime(2026, 3, 1, 2, 0, tzinfo=UTC), date(2026, 2, 1)),
        (datetime(2026, 1, 5, 2, 0, tzinfo=UTC), date(2025, 12, 1)),
    ],
)
def test_the_daily_sync_range(
    started: list[dict[str, Any]],
    clock: FrozenClock,
    today: datetime,
    expected_from: date,
) -> None:
    clock.freeze(today)
    tasks.daily_sync()
    [call] = started
    assert call["trigger"] == "daily" and call["date_from"] == expected_from


def test_the_daily_sync_is_skipped_until_configured(
    monkeypatch: pytest.MonkeyPatch, server: Any
) -> None:
    monkeypatch.setattr(settings, "read", lambda session: settings.VoicebotConfig([], None))
    monkeypatch.setattr(service, "start", lambda session, **kw: pytest.fail("sync started"))
    tasks.daily_sync()


@pytest.mark.parametrize(("day", "runs"), [(1, True), (5, True), (6, False), (28, False)])
def test_the_monthly_archive_runs_on_days_one_to_five(
    monkeypatch: pytest.MonkeyPatch, clock: FrozenClock, day: int, runs: bool
) -> None:
    calls: list[bool] = []
    clock.freeze(datetime(2026, 4, day, 3, 0, tzinfo=UTC))
    monkeypatch.setattr(export, "archive_previous_month_if_missing", lambda: calls.append(True))
    tasks.monthly_archive()
    assert calls == ([True] if runs else [])
