"""The header's search box in real headless Chromium: type a word without Polish
letters, see the results with the words marked, open one and land on the message in its
thread; on a phone the box and the results fit without sideways scrolling."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import httpx

from relaydesk.core.db import session_scope
from tests.conftest import customer_writes
from tests.web.conftest import PASSWORD, browser_sign_in

NewPage = Callable[..., Any]
Post = Callable[..., httpx.Response]
ANIA, PIOTR = "+48600100971", "+48600100972"
NO_SIDEWAYS = "document.documentElement.scrollWidth <= window.innerWidth"


def viewer() -> str:
    from relaydesk.auth import service as auth

    email = f"search-{secrets.token_hex(3)}@example.com"
    with session_scope() as session:
        auth.create_user(session, email, PASSWORD, "viewer", "test")
    return email


def test_search_from_the_header_and_open_the_message(new_page: NewPage, twilio_post: Post) -> None:
    customer_writes(twilio_post, ANIA, "Dzień dobry, gdzie jest moje zamówienie nr 7781?")
    for n in range(30):  # the message searched for is not the newest of its thread
        customer_writes(twilio_post, ANIA, f"Kolejna wiadomość {n}")
    customer_writes(twilio_post, PIOTR, "Czy dostawa w sobotę jest możliwa?")
    email = viewer()
    for width in (1280, 390):
        page = new_page()
        page.set_viewport_size({"width": width, "height": 900})
        browser_sign_in(page, email)
        page.wait_for_url("**/inbox")
        box = page.get_by_role("searchbox", name="Search")
        box.fill("zamowienia")
        box.press("Enter")
        page.wait_for_url("**/search?q=zamowienia*")
        hit = page.locator(".search-hit").first
        assert hit.locator("mark").inner_text() == "zamówienie"
        assert page.locator(".search-hit").count() == 1
        assert page.evaluate(NO_SIDEWAYS), width
        page.get_by_role("navigation", name="What to search").get_by_role(
            "link", name="Messages"
        ).click()
        page.wait_for_url("**type=messages*")
        assert page.locator(".search-hit mark").first.inner_text() == "zamówienie"
        page.locator(".search-hit a").first.click()
        page.wait_for_url("**/chat/**")
        target = page.locator(".bubble:target")
        assert target.count() == 1
        assert "zamówienie nr 7781" in target.inner_text()
        assert target.is_visible()
        page.close()
