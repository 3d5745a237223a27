"""Business hours in real headless Chromium: the header's state and the admins' page, at a
desktop and a phone width, without sideways scrolling."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from relaydesk.core.db import session_scope
from relaydesk.inbox import hours_settings
from relaydesk.inbox.hours import BusinessHours
from tests.conftest import FrozenClock
from tests.web.conftest import browser_sign_in
from tests.web.test_inbox_browser import NO_SIDEWAYS, SHOTS, signed_in

NewPage = Callable[..., Any]
MONDAY_EVENING = datetime(2026, 3, 16, 19, 0, tzinfo=UTC)  # 20:00 in Warsaw: closed


def office_hours() -> None:
    with session_scope() as session:
        hours_settings.save(
            session,
            BusinessHours(
                enabled=True,
                timezone="Europe/Warsaw",
                days=[[["09:00", "12:00"], ["13:00", "17:00"]]] * 5 + [[], []],
                message="Jesteśmy zamknięci, odpiszemy rano.",
            ),
            "test",
        )


@pytest.mark.parametrize("width", [1280, 390])
def test_an_admin_edits_business_hours_and_the_header_shows_the_state(
    width: int, new_page: NewPage, make_user: Callable[..., str], clock: FrozenClock
) -> None:
    clock.freeze(MONDAY_EVENING)
    office_hours()
    page = signed_in(new_page, make_user("admin"), width=width)
    page.goto("/inbox")
    badge = page.locator(".hours-badge[data-hours-state=closed]")
    assert badge.inner_text() == "Closed · opens Tue 09:00"
    assert page.evaluate(NO_SIDEWAYS)

    badge.click()
    page.wait_for_url("**/inbox/hours")
    assert page.evaluate(NO_SIDEWAYS)
    assert page.locator(".hours-day").count() == 7
    page.fill("input[name=close-0-1]", "18:30")
    page.fill("#hours-holidays", "2026-12-24\n2026-12-25")
    page.fill("#hours-message", "Zamknięte — odpiszemy jutro.")
    page.wait_for_selector("#hours-counter:has-text('UCS-2')")  # ę and — need UCS-2
    page.click("#business-hours button[type=submit]")
    page.wait_for_selector("#business-hours .notice-success")
    assert page.evaluate(NO_SIDEWAYS)
    if SHOTS:
        page.screenshot(path=str(SHOTS / f"business-hours-{width}.png"), full_page=True)
    with session_scope() as session:
        stored = hours_settings.read(session)
    assert stored.days[0] == [["09:00", "12:00"], ["13:00", "18:30"]]
    assert stored.holidays == ["2026-12-24", "2026-12-25"]
    assert stored.message == "Zamknięte — odpiszemy jutro."


def test_a_polish_viewer_reads_the_page_on_a_phone(
    new_page: NewPage, make_user: Callable[..., str], clock: FrozenClock
) -> None:
    clock.freeze(MONDAY_EVENING.replace(day=20))  # Friday evening
    office_hours()
    page = new_page("pl-PL")
    page.set_viewport_size({"width": 390, "height": 800})
    browser_sign_in(page, make_user("viewer"))
    page.wait_for_url("**/inbox")
    assert "pon. 09:00" in page.inner_text(".hours-badge")
    page.goto("/inbox/hours")
    assert page.locator("#business-hours form").count() == 0  # read only
    assert page.evaluate(NO_SIDEWAYS)
