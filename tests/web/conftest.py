"""Panel test helpers: users with passwords, signed-in HTTP clients, real Chromium."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, missing
from tests.web.browser import CHROMIUM, launch_chromium

PASSWORD = "correct horse battery"

MakeUser = Callable[..., str]


@pytest.fixture
def make_user(server: LiveServer) -> MakeUser:
    """Create a panel user with a role; returns the email (password: PASSWORD)."""
    from relaydesk.auth import service as auth
    from relaydesk.core.db import session_scope

    def make(role: str = "operator", email: str | None = None, password: str = PASSWORD) -> str:
        address = email or f"{role}-{secrets.token_hex(3)}@example.com"
        with session_scope() as session:
            auth.create_user(session, address, password, role, "test")
        return address

    return make


def login_form_token(client: httpx.Client) -> str:
    """Open the login page; returns its one-time form token (its cookie is now set)."""
    page = client.get("/login")
    assert page.status_code == 200
    found = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
    assert found, "the login form has no CSRF field"
    return found.group(1)


def sign_in(client: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    """Post the login form as a browser would."""
    token = login_form_token(client)
    return client.post(
        "/login",
        data={"email": email, "password": password, "login_csrf": token, "next": "/messages"},
    )


def csrf_of(client: httpx.Client) -> str:
    """The session's CSRF token, as the panel pages embed it."""
    page = client.get("/messages")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, "the page carries no CSRF token"
    return found.group(1)


@pytest.fixture
def panel(server: LiveServer, make_user: MakeUser) -> Callable[[str], httpx.Client]:
    """A signed-in HTTP client for a new user with `role`."""
    clients: list[httpx.Client] = []

    def open_as(role: str = "operator") -> httpx.Client:
        client = httpx.Client(base_url=server.url, timeout=30, follow_redirects=False)
        clients.append(client)
        answer = sign_in(client, make_user(role))
        assert answer.status_code == 303, answer.text
        return client

    yield open_as  # type: ignore[misc]
    for client in clients:
        client.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (never downloads a browser)."""
    if not CHROMIUM.exists():
        missing("Debian's chromium is not installed (/usr/bin/chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright package is not installed")
    with sync_playwright() as driver:
        chromium = launch_chromium(driver)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Any, server: LiveServer) -> Iterator[Callable[..., Any]]:
    """Open pages in fresh browser contexts (own cookies) at a chosen language."""
    contexts: list[Any] = []

    def open_page(locale: str = "en-GB") -> Any:
        context = browser.new_context(
            base_url=server.url, locale=locale, timezone_id="Europe/Warsaw"
        )
        context.set_default_timeout(20_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def browser_sign_in(page: Any, email: str, password: str = PASSWORD) -> None:
    """Fill and send the login form in the browser."""
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("form[action='/login'] button[type=submit]")
