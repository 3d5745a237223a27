"""The Multi-SMS tab in real headless Chromium: paste, count, confirm, watch it complete."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.web.conftest import MakeUser, browser_sign_in
from tests.web.test_accessibility import LOW_CONTRAST, UNLABELLED

NewPage = Callable[..., Any]
# What people paste: spaces inside numbers, 00 and + prefixes, a local number, a duplicate,
# a word, an empty line, and Twilio's magic number that the API refuses (error 21211).
MESSY = "+48 600 100 200, 0048600100200; 600100201\n\nnot-a-number\n+15005550001\n+48600100202"
TEXT = "Spring sale: 20% off everything until Sunday!"


@pytest.fixture(autouse=True)
def fast_campaigns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Campaigns go out at 50 messages/s (the server runs in this process)."""
    from relaydesk.core.config import get_settings

    monkeypatch.setattr(get_settings(), "campaign_rate_mps", 50.0)


def open_tab(new_page: NewPage, make_user: MakeUser, role: str, locale: str = "en-GB") -> Any:
    page = new_page(locale=locale)
    browser_sign_in(page, make_user(role))
    page.wait_for_url("**/inbox")
    page.click("nav.tabs a[href='/multi-sms']")
    page.wait_for_url("**/multi-sms")
    return page


def test_operator_pastes_a_messy_list_confirms_and_watches_the_campaign_complete(
    new_page: NewPage, make_user: MakeUser, api: httpx.Client
) -> None:
    from playwright.sync_api import expect

    page = open_tab(new_page, make_user, "operator")
    page.fill("#campaign-numbers", MESSY)
    page.fill("#campaign-body", TEXT)
    # The live count, before anything is created.
    count = page.locator("#campaign-count")
    expect(count.locator("[data-count-valid]")).to_have_text("4")
    expect(count.locator("[data-count-duplicates]")).to_have_text("1")
    expect(count.locator("[data-count-invalid]")).to_have_text("1")
    expect(count.locator("[data-count-total-segments]")).to_have_text("4")
    expect(count.locator(".invalid-entries")).to_contain_text("not-a-number")
    expect(page.locator("#campaign-counter")).to_contain_text("1 segment(s)")
    assert api.get("/api/multi-sms/batches").json() == []

    # The first button only shows what would happen.
    page.click("button.campaign-start")
    summary = page.locator("[data-summary]")
    expect(summary).to_contain_text("Send 4 messages, 4 segments in total, from +15005550006?")
    expect(summary).to_contain_text("Sending starts right away.")
    assert api.get("/api/multi-sms/batches").json() == []
    page.click("button.campaign-confirm-button")
    expect(page.locator("#campaign-confirm .notice-success")).to_contain_text("created")
    expect(page.locator("#campaign-numbers")).to_have_value("")  # ready for the next one
    expect(page.locator("#campaign-count [data-count=empty]")).to_be_visible()

    # The history follows the campaign to the end without a reload.
    batch = page.locator("#campaign-history article.batch").first
    expect(batch).to_have_attribute("data-status", "completed")
    expect(batch.locator("[data-batch-status]")).to_have_text("Completed")
    expect(batch.locator("progress")).to_have_attribute("value", "1.0")
    expect(batch.locator(".batch-percent")).to_contain_text("100% · 4/4")
    expect(batch.locator("[data-counter=sent]")).to_have_text("3")
    expect(batch.locator("[data-counter=delivered]")).to_have_text("3")
    expect(batch.locator("[data-counter=failed]")).to_have_text("1")
    expect(batch.locator("[data-counter=pending]")).to_have_text("0")
    expect(page.locator("#campaign-history")).to_have_attribute("data-running", "no")

    # Its recipients, with Twilio's refusal explained.
    batch.locator("details.batch-recipients summary").click()
    rows = batch.locator("table.recipients tbody tr")
    expect(rows).to_have_count(4)
    refused = batch.locator("tr[data-recipient='+15005550001']")
    expect(refused).to_have_attribute("data-status", "failed")
    expect(refused.locator("[data-error-code]")).to_have_text("Twilio error 21211")
    expect(refused).to_contain_text("is not a valid phone number")
    expect(batch.locator("tr[data-recipient='+48600100200'] td").nth(1)).to_have_text(
        "+48 600 100 200"
    )
    expect(batch.locator("details.batch-recipients")).to_contain_text("not-a-number")
    stored = api.get("/api/multi-sms/batches").json()
    assert [(b["status"], b["valid"], b["duplicates"]) for b in stored] == [("completed", 4, 1)]


def test_open_recipients_stay_open_and_fill_in_while_a_campaign_sends(
    new_page: NewPage, make_user: MakeUser, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    from relaydesk.core.config import get_settings

    monkeypatch.setattr(get_settings(), "campaign_rate_mps", 4.0)
    numbers = ", ".join(f"+486001003{i:02d}" for i in range(12))
    answer = api.post("/api/multi-sms/batches", json={"numbers": numbers, "body": "Hi"})
    assert answer.status_code == 201
    page = open_tab(new_page, make_user, "viewer")
    batch = page.locator("#campaign-history article.batch").first
    details = batch.locator("details.batch-recipients")
    details.locator("summary").click()
    expect(batch.locator("table.recipients tbody tr")).to_have_count(12)
    expect(batch).to_have_attribute("data-status", "processing")
    # The history reloads every 2 s meanwhile; the open list survives and keeps up.
    expect(batch).to_have_attribute("data-status", "completed", timeout=20_000)
    expect(details).to_have_attribute("open", "")
    expect(batch.locator("tr[data-status=delivered]")).to_have_count(12)
    # A viewer watches only.
    assert page.locator("#campaign-form").count() == 0
    assert page.locator("[data-action]").count() == 0


def test_scheduled_campaign_uses_the_browsers_time_zone_and_a_stale_summary_goes_away(
    new_page: NewPage, make_user: MakeUser, api: httpx.Client
) -> None:
    from playwright.sync_api import expect

    day = datetime.now(UTC).date() + timedelta(days=20)
    warsaw = datetime(day.year, day.month, day.day, 9, 0, tzinfo=ZoneInfo("Europe/Warsaw"))
    page = open_tab(new_page, make_user, "operator")  # the browser runs in Europe/Warsaw
    page.fill("#campaign-numbers", "+48600100200")
    page.fill("#campaign-body", "See you tomorrow")
    page.fill("#campaign-send-at", f"{day:%Y-%m-%d}T08:00")
    page.click("button.campaign-start")
    expect(page.locator("[data-summary]")).to_contain_text("Send 1 message, 1 segment in total")
    # The operator changes the time: the old summary disappears, a new one is needed.
    page.fill("#campaign-send-at", f"{day:%Y-%m-%d}T09:00")
    expect(page.locator("[data-summary]")).to_have_count(0)
    page.click("button.campaign-start")
    expect(page.locator("[data-summary] time")).to_have_attribute(
        "datetime", warsaw.astimezone(UTC).isoformat()
    )
    page.click("button.campaign-confirm-button")
    expect(page.locator("#campaign-confirm .notice-success")).to_contain_text("sending starts at")
    batch = page.locator("#campaign-history article.batch").first
    expect(batch).to_have_attribute("data-status", "pending")
    stored = api.get("/api/multi-sms/batches").json()[0]
    assert datetime.fromisoformat(stored["send_at"]) == warsaw

    # Cancel asks first; dismissing keeps the campaign.
    page.once("dialog", lambda dialog: dialog.dismiss())
    batch.locator("[data-action=cancel]").click()
    expect(batch.locator("[data-action=pause]")).to_be_visible()
    assert api.get(f"/api/multi-sms/batches/{stored['id']}").json()["status"] == "pending"
    batch.locator("[data-action=pause]").click()
    expect(batch).to_have_attribute("data-status", "paused")
    page.once("dialog", lambda dialog: dialog.accept())
    batch.locator("[data-action=cancel]").click()
    expect(batch).to_have_attribute("data-status", "canceled")
    expect(batch.locator("[data-action]")).to_have_count(0)
    expect(batch.locator("[data-counter=skipped]")).to_have_text("1")


def test_multi_sms_tab_reads_in_polish(
    new_page: NewPage, make_user: MakeUser, api: httpx.Client
) -> None:
    from playwright.sync_api import expect

    api.post("/api/multi-sms/batches", json={"numbers": "+48600100200", "body": "Hej"})
    page = open_tab(new_page, make_user, "operator", locale="pl-PL")
    expect(page.locator("nav.tabs a[aria-current=page]")).to_have_text("Multi-SMS")
    expect(page.locator("label[for=campaign-numbers]")).to_have_text("Numery odbiorców")
    expect(page.locator("label[for=campaign-body]")).to_have_text("Treść wiadomości")
    expect(page.locator("#campaign-numbers-help")).to_have_text(
        "Wpisz każdy numer w osobnej linii lub oddziel przecinkiem; "
        "duplikaty usuwamy automatycznie."
    )
    expect(page.locator("button.campaign-start")).to_have_text("Zainicjuj wysyłkę")
    expect(page.locator("#campaign-history-title")).to_contain_text("Historia wysyłek")
    expect(page.locator("#campaign-history-title")).to_contain_text("Multi-SMS (ostatnie 20)")
    expect(page.locator("[data-batch-status]").first).to_have_text("zakończone")
    page.fill("#campaign-numbers", "abc\n+48600100201")
    page.fill("#campaign-body", "Zażółć")
    expect(page.locator("#campaign-count")).to_contain_text("Poprawne")
    invalid = page.locator("#campaign-count .invalid-entries")
    expect(invalid).to_contain_text("może zawierać tylko")
    page.click("button.campaign-start")
    summary = page.locator("[data-summary]")
    expect(summary).to_contain_text("Wysłać 1 wiadomość (łącznie 1 segment)")


def test_multi_sms_tab_has_labels_and_contrast(
    new_page: NewPage, make_user: MakeUser, api: httpx.Client
) -> None:
    from playwright.sync_api import expect

    api.post("/api/multi-sms/batches", json={"numbers": "+15005550001, +48600100200", "body": "Hi"})
    page = open_tab(new_page, make_user, "operator")
    expect(page.locator("article.batch").first).to_have_attribute("data-status", "completed")
    page.fill("#campaign-numbers", "abc, +48600100200")
    page.fill("#campaign-body", "Hi")
    page.click("button.campaign-start")
    expect(page.locator("[data-summary]")).to_be_visible()
    page.locator("details.batch-recipients summary").first.click()
    expect(page.locator("table.recipients tbody tr")).to_have_count(2)
    assert page.evaluate(UNLABELLED) == []
    assert page.evaluate(LOW_CONTRAST) == []
