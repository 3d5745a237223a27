"""The digest recipients fragment: over HTTP per role, and driven in real Chromium."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.digests.fakes import FakeIndex, digests_to
from tests.digests.fakes import news_index as news_index  # a fixture
from tests.digests.fakes import settle_deliveries as settle_deliveries  # autouse
from tests.web.conftest import MakeUser, browser_sign_in
from tests.web.test_accessibility import LOW_CONTRAST, UNLABELLED
from tests.web.test_automation_pages import as_htmx

Panel = Callable[[str], httpx.Client]
NewPage = Callable[..., Any]

# How the News page embeds the fragment; injected into a panel page so the test does not
# depend on the rest of the News tab.
EMBED = """() => {
  const section = document.createElement('section');
  section.id = 'news-recipients';
  section.setAttribute('hx-get', '/news/recipients');
  section.setAttribute('hx-trigger', 'load');
  document.querySelector('main').prepend(section);
  htmx.process(section);
}"""


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_the_fragment_lists_recipients_and_only_operators_get_the_controls(
    panel: Panel, api: httpx.Client, role: str
) -> None:
    payload = {
        "phone": "+48600100991",
        "send_time": "08:15",
        "mode": "custom_prompt",
        "prompt": "Co w gospodarce?",
    }
    assert api.post("/api/news/recipients", json=payload).status_code == 201
    client = panel(role)
    fragment = client.get("/news/recipients")
    assert fragment.status_code == 200
    assert "<html" not in fragment.text  # a fragment, not a page
    assert "+48600100991" in fragment.text and "08:15" in fragment.text
    assert "Custom prompt" in fragment.text and "Co w gospodarce?" in fragment.text
    assert 'data-state="enabled"' in fragment.text
    if role == "viewer":
        assert "<form" not in fragment.text and "hx-post" not in fragment.text
        refused = client.post("/news/recipients/1/send", headers=as_htmx(client))
        assert refused.status_code == 403
    else:
        assert 'hx-post="/news/recipients"' in fragment.text
        assert '<option value="Europe/Warsaw" selected>' in fragment.text
        for action in ("toggle", "test", "send", "delete"):
            assert f'/{action}"' in fragment.text


def test_a_bad_form_comes_back_as_a_notice_and_saves_nothing(
    panel: Panel, api: httpx.Client
) -> None:
    client = panel("operator")
    answer = client.post(
        "/news/recipients",
        data={
            "phone": "+48600100992",
            "send_time": "26:00",
            "timezone": "Europe/Warsaw",
            "mode": "all_categories",
        },
        headers=as_htmx(client),
    )
    assert answer.status_code == 422
    assert answer.headers["HX-Retarget"] == "#notices"
    assert "HH:MM" in answer.text
    assert api.get("/api/news/recipients").json() == []


def test_operator_manages_digest_recipients_in_chromium(
    new_page: NewPage, make_user: MakeUser, api: httpx.Client, db: Any, news_index: FakeIndex
) -> None:
    from playwright.sync_api import expect

    page = new_page()
    browser_sign_in(page, make_user("operator"))
    page.wait_for_url("**/inbox")
    page.evaluate(EMBED)
    body = page.locator("#news-recipients-body")
    expect(body.locator(".empty")).to_have_text("No recipients yet.")
    expect(page.locator("#digest-timezone")).to_have_value("Europe/Warsaw")
    assert page.evaluate(UNLABELLED) == []

    # A number that is not one: the notice says why, nothing is saved.
    page.fill("#digest-phone", "12")
    page.click("text=Add recipient")
    expect(page.locator("#notices .notice-error")).to_contain_text("not a valid phone number")
    assert api.get("/api/news/recipients").json() == []

    page.fill("#digest-phone", "600 100 993")
    page.fill("#digest-time", "07:30")
    page.select_option("#digest-mode", "custom_prompt")
    page.fill("#digest-prompt", "Co nowego w biznesie?")
    page.click("text=Add recipient")
    expect(body.locator(".notice-success")).to_have_text("Recipient +48600100993 added.")
    row = page.locator("tr[data-recipient-id]").filter(has_text="+48600100993")
    expect(row.locator(".send-time")).to_have_text("07:30")
    expect(row).to_contain_text("Custom prompt")
    expect(row.locator(".status")).to_have_text("enabled")
    # The next digest in the viewer's own time zone (Warsaw here): 07:30.
    expect(row.locator(".next-send time .t")).to_have_text("07:30")
    [stored] = api.get("/api/news/recipients").json()
    assert (stored["send_time"], stored["timezone"], stored["prompt"]) == (
        "07:30",
        "Europe/Warsaw",
        "Co nowego w biznesie?",
    )
    assert page.evaluate(LOW_CONTRAST) == []

    # Test: the text and its segments, nothing sent.
    news_index.llm_text = "Stopy bez zmian, inflacja spada."
    row.locator("text=Test").click()
    preview = page.locator(f"#digest-preview-{stored['id']}")
    expect(preview.locator(".digest-text")).to_have_text("Stopy bez zmian, inflacja spada.")
    expect(preview.locator(".digest-segments")).to_have_text("1 segment")
    expect(preview.locator(".digest-sources summary")).to_have_text("3 sources")
    assert digests_to(db, "+48600100993") == []

    # Send now, after confirming.
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("text=Send now").click()
    expect(body.locator(".notice-success")).to_have_text("A digest was sent to +48600100993.")
    expect(row.locator(".last-outcome")).to_contain_text("sent")
    [message] = digests_to(db, "+48600100993")
    assert message.body == "Stopy bez zmian, inflacja spada."

    row.locator("text=Disable").click()
    expect(row.locator(".status")).to_have_text("disabled")
    expect(row.locator(".next-send")).to_have_count(0)
    row.locator("text=Enable").click()
    expect(row.locator(".status")).to_have_text("enabled")

    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("text=Delete").click()
    expect(body.locator(".notice-success")).to_have_text("Recipient +48600100993 deleted.")
    expect(page.locator("tr[data-recipient-id]")).to_have_count(0)
    assert api.get("/api/news/recipients").json() == []
