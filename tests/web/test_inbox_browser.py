"""The team inbox in real headless Chromium: open, assign, snooze, resolve, reopen live;
and the layout at a desktop and a phone width."""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select

from relaydesk.core.db import session_scope
from relaydesk.messaging.models import Conversation
from tests.conftest import wait_for
from tests.web.conftest import PASSWORD, browser_sign_in
from tests.web.test_inbox_pages import receive

NewPage = Callable[..., Any]
Post = Callable[..., httpx.Response]

CUSTOMER, OTHER = "+48600100851", "+48600100852"
NO_SIDEWAYS = "document.documentElement.scrollWidth <= window.innerWidth"
# RELAYDESK_SCREENSHOTS=<folder>: keep what the pages looked like (for a person to check).
SHOTS = (
    Path(os.environ["RELAYDESK_SCREENSHOTS"]) if os.environ.get("RELAYDESK_SCREENSHOTS") else None
)


def operator(name: str = "Ola") -> tuple[int, str]:
    """A named operator: (user id, email)."""
    from relaydesk.auth import service as auth

    email = f"{name.lower()}-{secrets.token_hex(3)}@example.com"
    with session_scope() as session:
        user = auth.create_user(session, email, PASSWORD, "operator", "test")
        user.name = name
        session.flush()
        return user.id, email


def signed_in(new_page: NewPage, email: str, width: int = 1280, height: int = 900) -> Any:
    page = new_page()
    page.set_viewport_size({"width": width, "height": height})
    browser_sign_in(page, email)
    page.wait_for_url("**/inbox")
    return page


def row(participant: str) -> str:
    return f".inbox-row[data-participant='{participant}']"


def test_operator_takes_snoozes_and_resolves_and_the_customer_reopens_it_live(
    new_page: NewPage, twilio_post: Post, db: Any
) -> None:
    receive(twilio_post, CUSTOMER, "Gdzie jest moja paczka?")
    receive(twilio_post, OTHER, "Dzień dobry")
    user_id, email = operator()
    page = signed_in(new_page, email)
    page.goto("/inbox")
    page.evaluate("window.__sameDocument = true")
    assert page.locator(".tabs a").first.get_attribute("href") == "/inbox"

    # Clicking a row opens the conversation beside the list, and the address says which.
    page.click(f"{row(CUSTOMER)} .inbox-link")
    page.wait_for_selector(f"#inbox-pane[data-conversation='{CUSTOMER}'] #thread")
    assert "c=%2B48600100851" in page.url
    assert page.locator(f"{row(CUSTOMER)} .inbox-link").get_attribute("aria-current") == "true"
    assert "Gdzie jest moja paczka?" in page.inner_text("#thread")
    page.wait_for_selector(f"{row(CUSTOMER)} .inbox-unread[hidden]", state="attached")

    page.click("[data-assign-me]")
    page.wait_for_selector(f"#inbox-state[data-assignee='{user_id}']")
    page.wait_for_selector(".thread-event:has-text('Ola took this conversation')")
    page.wait_for_selector(f"{row(CUSTOMER)} [data-owner]:has-text('Ola')")

    # Snoozing asks for a time, typed in the browser's zone (Europe/Warsaw) and kept in UTC.
    page.select_option("#state-status", "snoozed")
    page.wait_for_selector("[data-snooze-form]:not([hidden])")
    warsaw = ZoneInfo("Europe/Warsaw")
    wake = (datetime.now(warsaw) + timedelta(days=2)).replace(
        hour=9, minute=30, second=0, microsecond=0
    )
    page.fill("#state-until", wake.strftime("%Y-%m-%dT%H:%M"))
    page.click("[data-snooze-form] button[type=submit]")
    page.wait_for_selector("#inbox-state[data-status=snoozed]")
    page.wait_for_selector(".thread-event:has-text('Ola snoozed it until')")
    until = db.scalar(
        select(Conversation.snoozed_until).where(Conversation.participant == CUSTOMER)
    )
    assert until == wake

    page.select_option("#state-status", "resolved")
    page.wait_for_selector("#inbox-state[data-status=resolved]")
    page.wait_for_selector(".thread-event:has-text('Ola resolved it')")
    # The list shows open conversations: the resolved one leaves it.
    page.wait_for_selector(row(CUSTOMER), state="detached")

    # The customer writes again: back in the list as Open, and in the open thread, live.
    receive(twilio_post, CUSTOMER, "Halo, jest ktoś?")
    page.wait_for_selector(f"{row(CUSTOMER)}[data-status=open]")
    assert "Open" in page.inner_text(f"{row(CUSTOMER)} [data-state]")
    page.wait_for_selector("#inbox-state[data-status=open]")
    page.wait_for_selector("#thread :text('Halo, jest ktoś?')")
    page.wait_for_selector('.thread-event:has-text("Reopened by the customer\'s message")')
    assert page.evaluate("window.__sameDocument") is True


def test_a_live_reload_under_way_keeps_the_snooze_time_being_typed(
    new_page: NewPage, twilio_post: Post
) -> None:
    """A change elsewhere reloads the state bar; one already asked for when the operator
    chose "snoozed" used to come back and hide the time field mid-typing."""
    receive(twilio_post, CUSTOMER, "Gdzie jest moja paczka?")
    _, email = operator()
    page = signed_in(new_page, email)
    page.click(f"{row(CUSTOMER)} .inbox-link")
    page.wait_for_selector(f"#inbox-pane[data-conversation='{CUSTOMER}'] #inbox-state")
    page.evaluate(
        """document.addEventListener("htmx:beforeSwap", (event) => {
             if (event.detail.elt.id === "inbox-state" && event.detail.requestConfig.verb === "get")
               window.__reloadSwapped = event.detail.shouldSwap;
           })"""
    )
    held: list[Any] = []
    page.route(
        lambda url: urlsplit(url).path.endswith("/state"),
        lambda route: held.append(route) if route.request.method == "GET" else route.fallback(),
    )
    with page.expect_request(lambda r: r.method == "GET" and "/state" in r.url):
        page.evaluate("htmx.trigger(document.body, 'rd:changed')")
    page.select_option("#state-status", "snoozed")
    page.wait_for_selector("[data-snooze-form]:not([hidden])")
    page.fill("#state-until", "2030-01-02T09:30")

    while not held:  # the handler runs while Playwright waits
        page.wait_for_timeout(10)
    held[0].continue_()
    wait_for(
        lambda: page.evaluate("window.__reloadSwapped !== undefined"), what="the reload's answer"
    )
    assert page.evaluate("window.__reloadSwapped") is False
    assert page.is_visible("[data-snooze-form]")
    assert page.input_value("#state-until") == "2030-01-02T09:30"


def test_list_and_thread_fit_a_desktop_and_a_phone(new_page: NewPage, twilio_post: Post) -> None:
    receive(twilio_post, CUSTOMER, "Bardzo długa wiadomość " * 20)
    _, email = operator()

    wide = signed_in(new_page, email, 1280, 900)
    wide.goto(f"/inbox?c={CUSTOMER.replace('+', '%2B')}")
    wide.wait_for_selector("#thread")
    assert wide.is_visible(".inbox-side") and wide.is_visible("#inbox-pane")
    assert not wide.is_visible(".inbox-back")
    side, pane = (
        wide.locator(".inbox-side").bounding_box(),
        wide.locator("#inbox-pane").bounding_box(),
    )
    assert side["x"] + side["width"] <= pane["x"]  # side by side
    assert wide.evaluate(NO_SIDEWAYS)
    # The filter pills sit apart, none drawn over its neighbour.
    for group in wide.locator(".inbox-filter").all():
        boxes = [link.bounding_box() for link in group.locator("a").all()]
        for left, right in itertools.pairwise(boxes):
            assert left and right and left["x"] + left["width"] <= right["x"] + 0.5, boxes
    if SHOTS:
        wide.screenshot(path=str(SHOTS / "inbox-1280.png"))

    phone = signed_in(new_page, email, 390, 844)
    phone.goto("/inbox")
    assert phone.is_visible(".inbox-side") and not phone.is_visible("#inbox-pane")
    assert phone.evaluate(NO_SIDEWAYS)
    phone.click(f"{row(CUSTOMER)} .inbox-link")
    phone.wait_for_selector("#inbox-pane[data-conversation] #thread")
    assert not phone.is_visible(".inbox-side")
    assert phone.is_visible(".inbox-back") and phone.is_visible("#inbox-state")
    assert phone.evaluate(NO_SIDEWAYS)
    phone.goto(f"/inbox?c={CUSTOMER.replace('+', '%2B')}")
    phone.wait_for_selector("#thread")
    assert phone.evaluate(NO_SIDEWAYS)
    phone.click(".inbox-back")
    phone.wait_for_selector(".inbox-side", state="visible")
