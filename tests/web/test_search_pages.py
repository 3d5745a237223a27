"""The panel's search: the header's box, the results with the words marked, the jump to
the message in its thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select

from relaydesk.messaging.models import Message
from relaydesk.messaging.search_views import in_thread
from tests.conftest import customer_writes

Post = Callable[..., httpx.Response]
ANIA, OLA = "+48600123456", "+48501222333"


def test_the_results_mark_the_words_found_and_link_to_the_message(
    panel: Callable[[str], httpx.Client], twilio_post: Post, db: Any
) -> None:
    customer_writes(twilio_post, ANIA, "Dzień dobry, gdzie jest moje zamówienie?")
    customer_writes(twilio_post, OLA, "<b>ŻÓŁW</b> & zamówieniu")
    message_id = db.scalar(select(Message.id).where(Message.participant == ANIA))
    viewer = panel("viewer")
    home = viewer.get("/inbox")
    assert 'action="/search"' in home.text and 'name="q"' in home.text  # the header's box
    page = viewer.get("/search", params={"q": "zamowienia", "type": "messages"})
    assert page.status_code == 200
    assert "<mark>zamówienie</mark>" in page.text
    assert "<mark>zamówieniu</mark>" in page.text
    # The customer's text is escaped around and inside the marks.
    assert "&lt;b&gt;ŻÓŁW&lt;/b&gt; &amp; <mark>zamówieniu</mark>" in page.text
    assert "<b>ŻÓŁW</b>" not in page.text
    link = f"/chat/{ANIA.replace('+', '%2B')}?before={in_thread(message_id)}#message-{message_id}"
    assert link in page.text
    thread = viewer.get(link.split("#")[0])
    assert thread.status_code == 200 and f'id="message-{message_id}"' in thread.text
    conversations = viewer.get("/search", params={"q": "żółw"})
    assert "&lt;b&gt;<mark>ŻÓŁW</mark>&lt;/b&gt;" in conversations.text
    contacts = viewer.get("/search", params={"q": "600 123", "type": "contacts"})
    assert "<mark>48600123456</mark>" in contacts.text or "<mark>600123456</mark>" in contacts.text
    nothing = viewer.get("/search", params={"q": "xylofon"})
    assert "<mark>" not in nothing.text and "xylofon" in nothing.text
    refused = viewer.get("/search", params={"q": "ab"})
    assert refused.status_code == 200 and "at least 3" in refused.text


def test_the_search_page_needs_a_signed_in_person(panel: Callable[[str], httpx.Client]) -> None:
    client = panel("viewer")
    anonymous = httpx.Client(base_url=str(client.base_url), follow_redirects=False)
    answer = anonymous.get("/search", params={"q": "zamówienie"})
    assert answer.status_code in (302, 303, 401)
    assert answer.status_code == 401 or "/login" in answer.headers["location"]
