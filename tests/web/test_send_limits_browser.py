"""A message too long to send is refused with the API's own words, never cut and sent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import func, select

from relaydesk.messaging.models import Message
from tests.web.conftest import MakeUser, browser_sign_in

NewPage = Callable[..., Any]


def test_a_message_over_1600_characters_is_refused_like_the_api_refuses_it(
    new_page: NewPage, make_user: MakeUser, api: httpx.Client, db: Any
) -> None:
    text = "Długa wiadomość. " * 118  # 2,006 characters
    from_api = api.post("/api/send-message", json={"to": "+48600100500", "body": text})
    assert from_api.status_code == 422
    expected = from_api.json()["detail"]

    page = new_page()
    browser_sign_in(page, make_user("operator"))
    page.wait_for_url("**/inbox")
    page.goto("/messages")
    page.fill("#send-to", "+48600100500")
    page.fill("#send-body", text)
    # Nothing is cut in the browser: the whole text is what would be sent.
    assert len(page.locator("#send-body").input_value()) == len(text)
    assert page.locator("#send-counter .counter-warning").is_visible()
    page.click(".send-section button[type=submit]")
    page.wait_for_selector("#notices .notice-error")
    assert expected in page.inner_text("#notices .notice-error")
    assert db.scalar(select(func.count()).select_from(Message)) == 0
