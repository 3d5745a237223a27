"""The Contacts tab in headless Chromium: make a segment, watch its count, send a campaign to
it from the Multi-SMS tab; both pages fit a phone's width."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import customer_writes
from tests.web.conftest import MakeUser, browser_sign_in
from tests.web.test_accessibility import LOW_CONTRAST, UNLABELLED

NewPage = Callable[..., Any]
pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def fast_campaigns(monkeypatch: pytest.MonkeyPatch) -> None:
    from relaydesk.core.config import get_settings

    monkeypatch.setattr(get_settings(), "campaign_rate_mps", 50.0)


@pytest.fixture
def customers(api: httpx.Client, twilio_post: Callable[..., httpx.Response]) -> None:
    """Three VIP customers (one opted out) and one without the label."""
    assert api.post("/api/labels", json={"name": "VIP"}).status_code == 201
    for number in ("+48600100901", "+48600100902", "+48600100903", "+48600100904"):
        customer_writes(twilio_post, number)
    customer_writes(twilio_post, "+48600100903", body="STOP")
    for number in ("+48600100901", "+48600100902", "+48600100903"):
        assert api.patch(f"/api/contacts/{number}", json={"labels": ["VIP"]}).status_code == 200


def fits(page: Any, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px at {width}px"


def test_operator_makes_a_segment_and_sends_a_campaign_to_it(
    new_page: NewPage, make_user: MakeUser, api: httpx.Client, customers: None
) -> None:
    from playwright.sync_api import expect

    page = new_page()
    browser_sign_in(page, make_user("operator"))
    page.wait_for_url("**/inbox")
    page.click("nav.tabs a[href='/contacts']")
    page.wait_for_url("**/contacts")
    assert page.evaluate(UNLABELLED) == []
    assert page.evaluate(LOW_CONTRAST) == []
    count = page.locator("#segment-count")
    expect(count.locator("[data-segment-matching]")).to_have_text("3")  # opted-in only
    page.fill("#segment-name", "Klienci VIP")
    page.select_option("select[name=labels_any]", label="VIP")
    expect(count.locator("[data-segment-recipients]")).to_have_text("2")
    page.uncheck("input[name=opted_in_only]")
    expect(count.locator("[data-segment-matching]")).to_have_text("3")
    expect(count.locator("[data-segment-skipped]")).to_have_text("1")
    page.click("#segment-form button[type=submit]")
    expect(page.locator("[data-segment-created]")).to_contain_text("Klienci VIP")
    expect(page.locator("[data-segment-row='Klienci VIP']")).to_contain_text("2 recipients")
    expect(page.locator("#segment-name")).to_have_value("")  # the form is ready for another
    page.click("[data-segment-row='Klienci VIP'] [data-segment-edit]")
    expect(page.locator("#segment-editor-title")).to_contain_text("Klienci VIP")
    expect(page.locator("#segment-name")).to_have_value("Klienci VIP")
    expect(page.locator("#segment-count [data-segment-skipped]")).to_have_text("1")
    for width in (1280, 390):
        fits(page, width)

    page.set_viewport_size({"width": 1280, "height": 900})
    page.click("nav.tabs a[href='/multi-sms']")
    page.wait_for_url("**/multi-sms")
    page.check("#campaign-source-segment")
    expect(page.locator("#campaign-numbers")).to_be_hidden()
    page.select_option("#campaign-segment", label="Klienci VIP")
    page.fill("#campaign-body", "Zażółć gęślą jaźń")
    live = page.locator("#campaign-count")
    expect(live.locator("[data-count-valid]")).to_have_text("2")
    expect(live.locator("[data-count-skipped]")).to_contain_text("+48600100903")
    page.click("button.campaign-start")
    expect(page.locator("[data-summary-segment]")).to_contain_text("Klienci VIP")
    assert api.get("/api/multi-sms/batches").json() == []
    page.click("button.campaign-confirm-button")
    expect(page.locator("#campaign-confirm .notice-success")).to_contain_text("created")
    batch = page.locator("#campaign-history article.batch").first
    expect(batch.locator("[data-batch-segment]")).to_contain_text("Klienci VIP")
    expect(batch).to_have_attribute("data-status", "completed", timeout=30_000)
    (made,) = api.get("/api/multi-sms/batches").json()
    assert made["segment_name"] == "Klienci VIP"
    recipients = api.get(f"/api/multi-sms/batches/{made['id']}/recipients").json()
    assert {r["number"]: r["status"] for r in recipients} == {
        "+48600100901": "delivered",
        "+48600100902": "delivered",
        "+48600100903": "skipped",
    }
    for width in (1280, 390):
        fits(page, width)


def test_operator_imports_contacts_after_the_preview(
    new_page: NewPage, make_user: MakeUser, api: httpx.Client, tmp_path: Any
) -> None:
    from playwright.sync_api import expect

    file = tmp_path / "kontakty.csv"
    file.write_text("number;name\n600 100 950;Zażółć Gęślą\nnope;x\n", encoding="utf-8-sig")
    page = new_page()
    browser_sign_in(page, make_user("operator"))
    page.wait_for_url("**/inbox")
    page.goto("/contacts")
    page.set_input_files("#contacts-import-file", str(file))
    page.click("#contacts-import-form button[type=submit]")
    preview = page.locator("[data-import-preview]")
    expect(preview.locator("[data-import-valid]")).to_have_text("1")
    expect(preview.locator("[data-import-invalid]")).to_have_text("1")
    assert api.get("/api/contacts/+48600100950").status_code == 404
    page.click("[data-import-confirm]")
    expect(page.locator("[data-import-done]")).to_contain_text("1 new")
    assert api.get("/api/contacts/+48600100950").json()["name"] == "Zażółć Gęślą"
