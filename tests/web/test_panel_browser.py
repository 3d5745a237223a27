"""The panel in real headless Chromium: sign in, inbox, sending, live chat, languages, roles."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select

from relaydesk.channels.twilio.segments import count_segments
from relaydesk.messaging.models import Message
from tests.web.conftest import MakeUser, browser_sign_in

NewPage = Callable[..., Any]
Post = Callable[..., httpx.Response]


def customer_texts(post: Post, sender: str, body: str) -> None:
    sid = "SM" + secrets.token_hex(16)
    params = {"MessageSid": sid, "From": sender, "To": "+15005550006", "Body": body}
    assert post("/twilio/inbound", {**params, "NumMedia": "0"}).status_code == 200


def test_signed_out_visitor_is_sent_to_login_and_back(
    new_page: NewPage, make_user: MakeUser
) -> None:
    page = new_page()
    page.goto("/messages?direction=inbound")
    assert "/login?next=" in page.url
    email = make_user("viewer")
    page.fill("#email", email)
    page.fill("#password", "correct horse battery")
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url("**/messages?direction=inbound")
    assert page.locator("#filter-direction").input_value() == "inbound"


def test_wrong_password_is_refused(new_page: NewPage, make_user: MakeUser) -> None:
    page = new_page()
    browser_sign_in(page, make_user("operator"), "wrong password")
    page.wait_for_selector(".notice-error")
    assert "Wrong email or password" in page.inner_text(".notice-error")
    assert "/login" in page.url
    page.goto("/messages")
    assert "/login" in page.url


def test_operator_sees_counts_sends_and_watches_delivery(
    new_page: NewPage, make_user: MakeUser, twilio_post: Post, db: Any
) -> None:
    customer_texts(twilio_post, "+48600100400", "Dzień dobry, czy paczka już wyszła?")
    customer_texts(twilio_post, "+48600100401", "Hello")
    page = new_page()
    browser_sign_in(page, make_user("operator"))
    page.wait_for_url("**/inbox")
    page.goto("/messages")
    assert page.inner_text("[data-count=total]") == "2"
    assert page.inner_text("[data-count=inbound]") == "2"
    assert page.inner_text("[data-count=outbound]") == "0"
    assert page.locator("#history tbody tr").count() == 2

    page.fill("#send-to", "+48600100400")
    page.fill("#send-body", "Tak, paczka wyszła dziś rano.")
    # Polish letters switch the message to UCS-2: the counter says so before sending.
    warning = page.locator("#send-counter .counter-warning")
    assert warning.is_visible()
    assert "UCS-2" in warning.inner_text()
    page.click(".send-section button[type=submit]")
    page.wait_for_selector("#notices .notice-success")
    # The history shows the new message and, with no reload, its delivery.
    page.wait_for_selector("#history tbody tr[data-status=delivered]")
    row = page.locator("#history tbody tr").first
    assert "Tak, paczka wyszła" in row.inner_text()
    assert "OUTBOUND" in row.inner_text()
    page.wait_for_function("document.querySelector('[data-count=total]').textContent === '3'")
    stored = db.scalar(select(Message).where(Message.direction == "outbound"))
    assert stored.source == "operator" and stored.status == "delivered"
    assert page.locator("#send-body").input_value() == ""  # the form is ready for the next one


def test_chat_shows_a_customer_message_live_without_reloading(
    new_page: NewPage, make_user: MakeUser, twilio_post: Post, make_token: Callable[[str], str]
) -> None:
    customer_texts(twilio_post, "+48600100500", "Pierwsza wiadomość")
    page = new_page()
    browser_sign_in(page, make_user("operator"))
    page.wait_for_url("**/inbox")
    page.goto("/messages")
    page.click("#history tbody tr >> text=Open chat")
    page.wait_for_url("**/chat/**")
    assert page.locator(".bubble.in").count() == 1
    page.evaluate("window.__sameDocument = true")

    # The customer texts again from the sandbox phone (signed webhook path).
    answer = httpx.post(
        page.url.split("/chat/")[0] + "/sandbox/phone/messages",
        json={"from": "+48600100500", "body": "Druga wiadomość, na żywo"},
        headers={"Authorization": f"Bearer {make_token('operator')}"},
        timeout=30,
    )
    assert answer.status_code == 201
    page.wait_for_selector(".bubble.in >> text=Druga wiadomość, na żywo")
    assert page.evaluate("window.__sameDocument") is True  # no reload happened

    # Answer from the composer: an outbound bubble on the right, ticked when delivered.
    page.fill("#chat-body", "Dziękujemy!")
    page.click(".chat-composer button[type=submit]")
    page.wait_for_selector(".bubble.out[data-status=delivered]")
    assert "OPERATOR" in page.inner_text(".bubble.out .source").upper()
    assert page.inner_text(".bubble.out .ticks").strip() == "✓✓"


def test_opted_out_customer_shows_a_banner_and_a_disabled_composer(
    new_page: NewPage, make_user: MakeUser, twilio_post: Post
) -> None:
    customer_texts(twilio_post, "+48600100600", "STOP")
    page = new_page()
    browser_sign_in(page, make_user("operator"))
    page.wait_for_url("**/inbox")
    page.goto("/chat/+48600100600")
    assert page.locator(".opted-out").is_visible()
    assert page.locator("#chat-body").is_disabled()
    assert page.locator(".chat-composer button[type=submit]").is_disabled()


def test_sandbox_phone_page_plays_a_customer(
    new_page: NewPage, make_user: MakeUser, db: Any
) -> None:
    page = new_page()
    browser_sign_in(page, make_user("operator"))
    page.wait_for_url("**/inbox")
    page.click("nav.tabs >> text=Sandbox phone")
    page.fill("#phone-number", "+48600100700")
    page.fill("#phone-body", "Ile kosztuje dostawa?")
    page.click("text=Send as the customer")
    page.wait_for_selector("#phone-screen .bubble >> text=Ile kosztuje dostawa?")
    stored = db.scalar(select(Message).where(Message.participant == "+48600100700"))
    assert stored is not None and stored.direction == "inbound"


def test_language_switch_to_polish_is_remembered(new_page: NewPage, make_user: MakeUser) -> None:
    page = new_page()
    browser_sign_in(page, make_user("operator"))
    page.wait_for_url("**/inbox")
    page.goto("/messages")
    assert page.inner_text("#history-title") == "Message history"
    page.select_option("#language-select", "pl")
    page.wait_for_selector("html[lang=pl]")
    assert page.inner_text("#history-title") == "Historia wiadomości"
    assert page.inner_text("nav.tabs a[aria-current=page]") == "Wiadomości"
    page.reload()
    assert page.inner_text("#history-title") == "Historia wiadomości"


def test_browser_language_is_the_default(new_page: NewPage) -> None:
    polish = new_page(locale="pl-PL")
    polish.goto("/login")
    assert polish.inner_text("h1") == "Zaloguj się do relaydesk"
    english = new_page(locale="en-US")
    english.goto("/login")
    assert english.inner_text("h1") == "Sign in to relaydesk"


def test_viewer_cannot_send(new_page: NewPage, make_user: MakeUser, twilio_post: Post) -> None:
    customer_texts(twilio_post, "+48600100800", "Hello")
    page = new_page()
    browser_sign_in(page, make_user("viewer"))
    page.wait_for_url("**/inbox")
    page.goto("/messages")
    assert page.locator("#send-body").count() == 0
    assert page.locator("#history button:has-text('Delete')").count() == 0
    page.goto("/chat/+48600100800")
    assert page.locator(".chat-composer").count() == 0
    # Even a hand-made request with the page's own CSRF token is refused.
    status = page.evaluate(
        """async () => {
            const token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token'];
            const body = new URLSearchParams({to: '+48600100800', body: 'x', csrf_token: token});
            const r = await fetch('/messages/send', {method: 'POST', body});
            return r.status;
        }"""
    )
    assert status == 403


def test_delete_asks_for_confirmation(
    new_page: NewPage, make_user: MakeUser, twilio_post: Post, db: Any
) -> None:
    customer_texts(twilio_post, "+48600100900", "to be deleted")
    page = new_page()
    browser_sign_in(page, make_user("operator"))
    page.wait_for_url("**/inbox")
    page.goto("/messages")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#history button:has-text('Delete')")
    assert db.scalar(select(Message.id)) is not None
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#history button:has-text('Delete')")
    page.wait_for_selector("#history td.empty")
    assert db.scalar(select(Message.id)) is None


def test_segment_counter_agrees_with_the_server(new_page: NewPage, make_user: MakeUser) -> None:
    page = new_page()
    browser_sign_in(page, make_user("operator"))
    page.wait_for_url("**/inbox")
    page.goto("/messages")
    counter = page.locator("#send-counter")
    samples = ["Hello", "a" * 161, "Zażółć gęślą jaźń", "€ and [brackets]", "ą" * 71, "{" * 80]
    for text in samples:
        page.fill("#send-body", text)
        expected = count_segments(text)
        assert counter.get_attribute("data-segments") == str(expected.segments), text
        assert counter.get_attribute("data-encoding") == expected.encoding, text


def test_admin_creates_a_token_shown_once_and_tests_the_connection(
    new_page: NewPage, make_user: MakeUser
) -> None:
    page = new_page()
    browser_sign_in(page, make_user("admin"))
    page.wait_for_url("**/inbox")
    page.click("nav.tabs >> text=Users and tokens")
    page.fill("#token-name", "crm-integration")
    page.click("text=Create token")
    token = page.input_value("#new-token")
    assert token.startswith("rd_")
    page.reload()
    assert token not in page.content()
    page.click("nav.tabs >> text=Settings")
    page.click("text=Test connection")
    page.wait_for_selector("#test-result [data-test-ok=true]")
    page.click("nav.tabs >> text=Audit log")
    assert "token.create" in page.inner_text("table")


def test_api_reference_renders_from_local_assets(new_page: NewPage, make_user: MakeUser) -> None:
    page = new_page()
    browser_sign_in(page, make_user("viewer"))
    page.wait_for_url("**/inbox")
    page.click("nav.tabs >> text=REST API")
    # Every tag is listed, folded; opening one draws its operations.
    tags = page.locator("#swagger-ui .opblock-tag")
    tags.first.wait_for()
    names = [name.strip() for name in tags.all_inner_texts()]
    assert any(name.startswith("messages") for name in names), names
    assert any(name.startswith("inbox") for name in names), names
    page.click('#swagger-ui .opblock-tag[data-tag="messages"]')
    page.wait_for_selector('#swagger-ui .opblock-summary-path[data-path="/api/send-message"]')
