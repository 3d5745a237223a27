"""The automation tabs in real headless Chromium: auto-reply end to end, the AI test box."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.fakes import FakeOpenAI
from tests.fakes import openai_fake as openai_fake  # the fixture, for pytest to find
from tests.web.conftest import MakeUser, browser_sign_in
from tests.web.test_accessibility import LOW_CONTRAST, UNLABELLED

NewPage = Callable[..., Any]
CUSTOMER = "+48600100950"


@pytest.fixture
def operator_page(new_page: NewPage, make_user: MakeUser) -> Any:
    page = new_page()
    browser_sign_in(page, make_user("operator"))
    page.wait_for_url("**/inbox")
    return page


def test_auto_reply_switched_on_in_the_panel_answers_a_sandbox_customer(
    operator_page: Any, api: httpx.Client
) -> None:
    from playwright.sync_api import expect

    # No waiting for more messages: the answer goes out as soon as the message is in.
    assert api.put("/api/automation/rules", json={"debounce_seconds": 0}).status_code == 200
    page = operator_page
    page.click("nav.tabs >> text=Auto-reply")
    page.wait_for_url("**/auto-reply")
    expect(page.locator("[data-auto-reply-state]")).to_have_attribute(
        "data-auto-reply-state", "off"
    )
    page.check("#ar-enabled")
    page.fill("#ar-message", "Thanks for your message! We answer within the hour.")
    page.click("#auto-reply button[type=submit]")
    expect(page.locator("#auto-reply .notice-success")).to_be_visible()
    expect(page.locator("[data-auto-reply-state]")).to_have_attribute("data-auto-reply-state", "on")

    # The chat with the customer is open in another tab before they write.
    chat = page.context.new_page()
    chat.goto(f"/chat/{CUSTOMER}")
    expect(chat.locator("#thread .empty")).to_be_visible()

    page.click("nav.tabs >> text=Sandbox phone")
    page.fill("#phone-number", CUSTOMER)
    page.fill("#phone-body", "Hello, is my order ready?")
    page.click("text=Send as the customer")
    # The answer reaches the customer's phone…
    expect(
        page.locator("#phone-screen .bubble[data-direction=relaydesk]").filter(
            has_text="We answer within the hour"
        )
    ).to_be_visible()
    # …and appears in the open chat by itself, marked as the auto-reply.
    answer = chat.locator(".bubble.out").filter(has_text="We answer within the hour")
    expect(answer).to_be_visible()
    expect(answer.locator(".source")).to_have_text("auto-reply")
    expect(chat.locator(".bubble.in").filter(has_text="is my order ready")).to_be_visible()
    expect(answer).to_have_attribute("data-status", "delivered")
    chat.reload()
    expect(chat.locator("[data-bot]")).to_have_attribute("data-bot", "on")
    expect(chat.locator("#bot-state")).to_contain_text("Classic auto-reply")


def test_chat_bot_switch_turns_the_bot_off_for_one_customer(
    operator_page: Any, api: httpx.Client
) -> None:
    from playwright.sync_api import expect

    api.put("/api/auto-reply", json={"enabled": True, "message": "Thanks!"})
    phone = api.post("/sandbox/phone/messages", json={"from": CUSTOMER, "body": "Hi"})
    assert phone.status_code == 201, phone.text
    page = operator_page
    page.goto(f"/chat/{CUSTOMER}")
    switch = page.locator("#bot-enabled")
    expect(switch).to_be_checked()
    switch.uncheck()
    expect(page.locator("[data-bot]")).to_have_attribute("data-bot", "off")
    assert api.get(f"/api/conversations/{CUSTOMER}/automation").json()["enabled"] is False
    page.locator("#bot-enabled").check()
    expect(page.locator("[data-bot]")).to_have_attribute("data-bot", "on")


@pytest.fixture
def held_model(openai_fake: FakeOpenAI) -> Iterator[threading.Event]:
    """The fake model answers only once the test lets it (to see the waiting state)."""
    release = threading.Event()

    def reply(body: dict[str, Any]) -> str:
        release.wait(30)
        return "We open at eight on Saturdays."

    openai_fake.reply_with(reply)
    yield release
    release.set()


def test_ai_test_box_waits_for_the_model_then_shows_answer_and_context(
    operator_page: Any,
    api: httpx.Client,
    openai_fake: FakeOpenAI,
    held_model: threading.Event,
) -> None:
    from playwright.sync_api import expect

    api.put(
        "/api/ai/config",
        json={"base_url": openai_fake.base_url, "system_prompt": "You answer for a bakery."},
    )
    api.post("/sandbox/phone/messages", json={"from": CUSTOMER, "body": "Do you bake rye?"})
    page = operator_page
    page.click("nav.tabs >> text=AI")
    page.wait_for_url("**/ai")
    # Typing a number loads that conversation as bubbles.
    page.fill("#ai-participant", CUSTOMER)
    page.locator("#ai-participant").dispatch_event("change")
    expect(page.locator("#ai-conversation .bubble.in .bubble-body")).to_have_text(
        "Do you bake rye?"
    )

    page.fill("#ai-test-message", "Are you open on Saturday?")
    page.click("#ai-test-message ~ .button-row button")
    expect(page.locator("#ai-test-busy")).to_be_visible()
    expect(page.locator("#ai-test-message ~ .button-row button")).to_be_disabled()
    held_model.set()
    expect(page.locator("[data-preview-reply]")).to_have_text("We open at eight on Saturdays.")
    expect(page.locator("#ai-test-busy")).to_be_hidden()
    expect(page.locator("#ai-usage tbody")).to_contain_text("gpt-4o-mini")
    context = page.locator("details.context")
    expect(context.locator(".turns")).to_be_hidden()
    context.locator("summary").click()
    expect(context.locator(".turn-system")).to_contain_text("You answer for a bakery.")
    expect(context.locator(".turn-user").last).to_contain_text("Are you open on Saturday?")
    assert [m["direction"] for m in api.get("/api/messages").json()["items"]] == ["inbound"]


def test_new_tabs_read_in_polish(new_page: NewPage, make_user: MakeUser) -> None:
    from playwright.sync_api import expect

    page = new_page(locale="pl-PL")
    browser_sign_in(page, make_user("operator"))
    page.wait_for_url("**/inbox")
    tabs = page.locator("nav.tabs a")
    assert tabs.all_inner_texts()[:6] == [
        "Skrzynka",
        "Wiadomości",
        "Kontakty",
        "Auto-odpowiedź",
        "AI",
        "Asystenci",
    ]
    page.click("nav.tabs >> text=Auto-odpowiedź")
    expect(page.locator("h1")).to_have_text("Auto-odpowiedź")
    expect(page.locator("label.switch-label")).to_contain_text(
        "Włącz automatyczne odpowiadanie na nowe wiadomości"
    )
    expect(page.locator("label[for=ar-message]")).to_have_text("Treść wysyłanej wiadomości")
    expect(page.locator("#how-title")).to_have_text("Jak to działa?")
    page.click("nav.tabs >> text=Asystenci")
    expect(page.locator("h1")).to_have_text("Asystenci")
    page.click("nav.tabs a[href='/ai']")
    expect(page.locator("h1")).to_have_text("Odpowiedzi AI")


def test_new_tabs_have_labels_and_contrast(
    new_page: NewPage, make_user: MakeUser, api: httpx.Client
) -> None:
    assistant = api.post("/api/assistants", json={"name": "Bakery"}).json()
    api.post("/api/phone-numbers", json={"number": "+48732100200", "assistant_id": assistant["id"]})
    page = new_page()
    browser_sign_in(page, make_user("admin"))
    page.wait_for_url("**/inbox")
    for path in ("/auto-reply", "/ai", "/assistants", f"/assistants/{assistant['id']}"):
        page.goto(path)
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        assert page.evaluate(UNLABELLED) == [], path
        assert page.evaluate(LOW_CONTRAST) == [], path
