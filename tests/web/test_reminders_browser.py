"""Reminders and "send later" in real headless Chromium (Polish, Europe/Warsaw)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from tests.web.conftest import MakeUser, browser_sign_in
from tests.web.test_accessibility import LOW_CONTRAST, UNLABELLED

NewPage = Callable[..., Any]
WARSAW = ZoneInfo("Europe/Warsaw")  # the browser's time zone in these tests


def local_slot(days: int, hour: int, minute: int) -> datetime:
    """A wall-clock time in Warsaw `days` from today."""
    day = datetime.now(WARSAW) + timedelta(days=days)
    return day.replace(hour=hour, minute=minute, second=0, microsecond=0)


def test_operator_creates_a_reminder_in_the_przypomnienia_tab(
    new_page: NewPage, make_user: MakeUser, api: httpx.Client
) -> None:
    from playwright.sync_api import expect

    page = new_page(locale="pl-PL")
    browser_sign_in(page, make_user("operator"))
    page.wait_for_url("**/inbox")
    page.click("nav.tabs >> text=Przypomnienia")
    page.wait_for_url("**/reminders")
    expect(page.locator("h1")).to_have_text("Przypomnienia")
    expect(page.locator("#reminders-section .empty")).to_have_text("Brak przypomnień.")
    assert page.evaluate(UNLABELLED) == []
    assert page.evaluate(LOW_CONTRAST) == []

    start = local_slot(days=3, hour=9, minute=15)
    page.fill("#reminder-to", "600 100 801")
    page.fill("#reminder-body", "Jutro odbiór zamówienia w sklepie.")
    page.fill("#reminder-interval", "90")
    page.fill("#reminder-start", start.strftime("%Y-%m-%dT%H:%M"))
    page.click("text=Zapisz przypomnienie")

    expect(page.locator("#reminders-section .notice-success")).to_have_text(
        "Przypomnienie zapisane."
    )
    row = page.locator("tr[data-reminder-id]").filter(has_text="+48600100801")
    expect(row).to_contain_text("Jutro odbiór zamówienia w sklepie.")
    expect(row).to_contain_text("co 90 min")
    expect(row.locator(".status")).to_have_text("aktywny")
    # The next run in the viewer's own time: the 09:15 typed in Warsaw.
    expect(row.locator(".next-run time .t")).to_have_text("09:15")
    expect(page.locator("#reminder-body")).to_have_value("")  # the form is ready for the next
    [reminder] = api.get("/api/reminders").json()
    assert datetime.fromisoformat(reminder["start_at"]) == start.astimezone(UTC)
    assert reminder["interval_minutes"] == 90
    assert page.evaluate(LOW_CONTRAST) == []

    row.locator("text=Wstrzymaj").click()
    expect(row.locator(".status")).to_have_text("wstrzymany")
    row.locator("text=Wznów").click()
    expect(row.locator(".status")).to_have_text("aktywny")
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("text=Usuń").click()
    expect(page.locator("#reminders-section .notice-success")).to_have_text(
        "Przypomnienie usunięte."
    )
    expect(page.locator("tr[data-reminder-id]")).to_have_count(0)
    assert api.get("/api/reminders").json() == []


def test_send_later_converts_the_local_time_and_lists_the_message(
    new_page: NewPage, make_user: MakeUser, api: httpx.Client
) -> None:
    from playwright.sync_api import expect

    page = new_page()
    browser_sign_in(page, make_user("operator"))
    page.wait_for_url("**/inbox")
    page.goto("/messages")
    when = local_slot(days=2, hour=18, minute=45)
    page.fill("#send-to", "+48600100802")
    page.fill("#send-body", "See you tomorrow")
    page.fill("#send-send-at", when.strftime("%Y-%m-%dT%H:%M"))
    page.click("text=Send message")
    expect(page.locator("#notices [data-scheduled]")).to_contain_text(
        "Message to +48600100802 scheduled for"
    )
    row = page.locator("#scheduled tr[data-scheduled-id]")
    expect(row).to_contain_text("See you tomorrow")
    expect(row.locator("time .t")).to_have_text("18:45")
    [scheduled] = api.get("/api/scheduled-messages").json()
    assert datetime.fromisoformat(scheduled["scheduled_at"]) == when.astimezone(UTC)
    # The form was reset: the next message goes out at once, not later.
    expect(page.locator("#send-send-at")).to_have_value("")
    page.fill("#send-to", "+48600100803")
    page.fill("#send-body", "Right now")
    page.click("text=Send message")
    expect(page.locator("#notices .notice-success").first).to_contain_text("Sent to +48600100803")
    assert len(api.get("/api/scheduled-messages").json()) == 1

    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("text=Cancel").click()
    expect(page.locator("#scheduled tr[data-scheduled-id]")).to_have_count(0)
    assert api.get("/api/scheduled-messages").json() == []
