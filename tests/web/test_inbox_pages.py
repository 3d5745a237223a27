"""The team inbox over plain HTTP: the list and its filters, the state bar, the events."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from relaydesk.core.db import session_scope
from relaydesk.messaging.models import Conversation, ConversationEvent, ConversationRead
from tests.conftest import LiveServer
from tests.web.conftest import PASSWORD, csrf_of, sign_in

Post = Callable[..., httpx.Response]
FIRST, SECOND, THIRD = "+48600100801", "+48600100802", "+48600100803"


@dataclass
class Member:
    """A signed-in team member: their user id, name and panel client."""

    id: int
    name: str
    client: httpx.Client

    def htmx(self) -> dict[str, str]:
        return {"X-CSRF-Token": csrf_of(self.client), "HX-Request": "true"}

    def set_state(self, participant: str, **fields: str) -> httpx.Response:
        return self.client.post(f"/inbox/{participant}/state", data=fields, headers=self.htmx())

    def rows(self, **filters: str) -> list[str]:
        """The participants the list shows, in order."""
        page = self.client.get("/inbox/list", params=filters)
        assert page.status_code == 200, page.text
        return re.findall(
            r'class="inbox-row[^"]*" id="inbox-row-\d+" data-participant="([^"]+)"', page.text
        )


@pytest.fixture
def member(server: LiveServer) -> Iterator[Callable[..., Member]]:
    """Make a named user with a role, signed in to the panel."""
    from relaydesk.auth import service as auth

    clients: list[httpx.Client] = []

    def make(name: str, role: str = "operator") -> Member:
        email = f"{name.lower()}-{secrets.token_hex(3)}@example.com"
        with session_scope() as session:
            user = auth.create_user(session, email, PASSWORD, role, "test")
            user.name = name
            session.flush()
            user_id = user.id
        client = httpx.Client(base_url=server.url, timeout=30, follow_redirects=False)
        clients.append(client)
        assert sign_in(client, email).status_code == 303
        return Member(user_id, name, client)

    yield make
    for client in clients:
        client.close()


def receive(post: Post, sender: str, body: str = "Dzień dobry", profile: str = "") -> None:
    params = {
        "MessageSid": "SM" + secrets.token_hex(16),
        "From": sender,
        "To": "+15005550006",
        "Body": body,
        "NumMedia": "0",
    }
    if profile:
        params["ProfileName"] = profile
    assert post("/twilio/inbound", params).status_code == 200


def state_of(db: Any, participant: str) -> tuple[str, int | None, str]:
    row = db.scalar(select(Conversation).where(Conversation.participant == participant))
    return row.status.value, row.assignee_id, row.priority.value


def test_inbox_is_the_first_tab_and_lists_open_conversations_newest_first(
    member: Callable[..., Member], twilio_post: Post
) -> None:
    anna = member("Anna")
    for number in (FIRST, SECOND, THIRD):
        receive(twilio_post, number, f"Pytanie od {number}")
    page = anna.client.get("/inbox")
    assert page.status_code == 200
    tabs = re.findall(r'<li><a href="(/[^"]*)"', page.text.split('aria-label="Sections"')[1])
    assert tabs[0] == "/inbox"
    assert anna.rows() == [THIRD, SECOND, FIRST]
    assert f"Pytanie od {THIRD}" in page.text
    assert "Choose a conversation from the list." in page.text


def test_filters_mine_unassigned_and_states_are_kept_in_the_url(
    member: Callable[..., Member], twilio_post: Post
) -> None:
    anna, piotr = member("Anna"), member("Piotr")
    for number in (FIRST, SECOND, THIRD):
        receive(twilio_post, number)
    assert anna.set_state(FIRST, assignee="me").status_code == 200
    assert anna.set_state(SECOND, assignee=str(piotr.id)).status_code == 200
    assert anna.set_state(SECOND, status="pending").status_code == 200

    assert anna.rows(owner="mine") == [FIRST]
    assert piotr.rows(owner="mine") == []  # Piotr's is pending, the default shows open ones
    assert piotr.rows(owner="mine", status="pending") == [SECOND]
    assert anna.rows(owner="unassigned") == [THIRD]
    assert anna.rows(status="resolved") == []

    # A reload keeps the filters: the page's links and its live list carry them.
    page = anna.client.get("/inbox", params={"owner": "mine", "status": "pending"})
    assert 'hx-get="/inbox/list?owner=mine&amp;status=pending"' in page.text
    assert re.search(r'href="/inbox\?owner=mine&amp;status=pending" aria-current', page.text)
    assert anna.client.get("/inbox", params={"owner": "everyone"}).status_code == 422


def test_load_more_continues_after_the_first_page(
    member: Callable[..., Member], twilio_post: Post
) -> None:
    anna = member("Anna")
    numbers = [f"+486001009{n:02d}" for n in range(53)]
    for number in numbers:
        receive(twilio_post, number)
    page = anna.client.get("/inbox/list")
    assert page.text.count('<li class="inbox-row') == 50
    more = re.search(r'hx-get="(/inbox/list\?cursor=[^"]+)"', page.text)
    assert more, "no Load more button"
    rest = anna.client.get(more.group(1).replace("&amp;", "&"))
    shown = re.findall(r'data-participant="([^"]+)"', page.text + rest.text)
    assert shown == list(reversed(numbers))
    assert "Load more" not in rest.text


def test_a_row_shows_name_channel_preview_unread_owner_state_and_priority(
    member: Callable[..., Member], twilio_post: Post
) -> None:
    anna, piotr = member("Anna"), member("Piotr")
    receive(twilio_post, FIRST, "Pierwsza")
    receive(twilio_post, FIRST, "Czy paczka już wyszła?", profile="Jan Kowalski")
    anna.set_state(FIRST, assignee=str(piotr.id))
    anna.set_state(FIRST, priority="urgent")

    row = anna.client.get("/inbox/list").text
    assert "Jan Kowalski" in row
    assert "Czy paczka już wyszła?" in row
    assert "SMS" in row
    assert "data-owner>Piotr<" in row
    assert 'data-priority="urgent"' in row
    assert re.search(r"data-state>\s*Open", row)
    assert 'data-unread="2"' in row
    assert "<time" in row

    # Opening it marks it read for Anna only (and the shared counter).
    opened = anna.client.post(f"/inbox/{FIRST}/read", headers=anna.htmx())
    assert opened.status_code == 200
    assert 'hx-swap-oob="true"' in opened.text
    assert 'data-unread="0"' in anna.client.get("/inbox/list").text
    assert 'data-unread="2"' in piotr.client.get("/inbox/list").text


def test_opening_a_conversation_by_link_shows_state_thread_and_composer(
    member: Callable[..., Member], twilio_post: Post
) -> None:
    anna = member("Anna")
    receive(twilio_post, FIRST, "Halo")
    page = anna.client.get("/inbox", params={"c": FIRST, "status": "open"})
    assert page.status_code == 200
    assert f'data-conversation="{FIRST}"' in page.text
    assert 'id="inbox-state"' in page.text
    assert 'id="thread"' in page.text
    assert 'hx-post="/chat/%2B48600100801/send"' in page.text  # the chat's own composer
    assert 'hx-post="/inbox/%2B48600100801/read"' in page.text
    assert "Back to the list" in page.text
    pane = anna.client.get(f"/inbox/{FIRST}/pane")
    assert pane.status_code == 200 and 'id="inbox-state"' in pane.text


def test_unknown_conversation_is_404(member: Callable[..., Member]) -> None:
    anna = member("Anna")
    assert anna.client.get("/inbox", params={"c": "+48600100999"}).status_code == 404
    assert anna.client.get("/inbox/+48600100999/pane").status_code == 404
    refused = anna.set_state("+48600100999", status="resolved")
    assert refused.status_code == 404
    assert "No conversation with +48600100999" in refused.text


def test_operator_assigns_resolves_and_snoozes_and_the_thread_shows_it(
    member: Callable[..., Member], twilio_post: Post, db: Any
) -> None:
    anna, piotr = member("Anna"), member("Piotr")
    receive(twilio_post, FIRST, "Dzień dobry")

    assigned = anna.set_state(FIRST, assignee=str(piotr.id))
    assert assigned.status_code == 200
    assert assigned.headers["HX-Trigger"] == "rd:changed"
    assert 'id="inbox-state"' in assigned.text
    assert re.search(rf'<option value="{piotr.id}" selected>Piotr</option>', assigned.text)
    assert anna.set_state(FIRST, priority="high").status_code == 200
    assert anna.set_state(FIRST, assignee="me").status_code == 200
    assert anna.set_state(FIRST, status="resolved").status_code == 200
    assert state_of(db, FIRST) == ("resolved", anna.id, "high")
    assert anna.rows(status="resolved") == [FIRST]
    assert anna.rows() == []

    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    snoozed = anna.set_state(FIRST, status="snoozed", snoozed_until=until.isoformat())
    assert snoozed.status_code == 200, snoozed.text
    assert "Snoozed until" in snoozed.text
    assert db.scalar(select(Conversation.snoozed_until)) == until

    thread = anna.client.get(f"/chat/{FIRST}/thread").text
    lines = re.findall(r'<span class="thread-event-text">(.*?)</span>', thread, re.S)
    assert [" ".join(line.split()) for line in lines[:4]] == [
        "Anna assigned this conversation to Piotr",
        "Anna set the priority to high",
        "Anna took this conversation",
        "Anna resolved it",
    ]
    assert lines[4].strip().startswith("Anna snoozed it until <time")

    # The customer writes: open again, and the thread says why.
    receive(twilio_post, FIRST, "Jeszcze jedno")
    assert anna.rows(owner="mine") == [FIRST]
    thread = anna.client.get(f"/inbox/{FIRST}/pane").text
    assert "Reopened by the customer&#39;s message" in thread
    # The events sit among the bubbles by time: the reopening right after its message.
    assert thread.index("Dzień dobry") < thread.index("Anna resolved it")
    assert thread.index("Anna resolved it") < thread.index("Jeszcze jedno")
    assert thread.index("Jeszcze jedno") < thread.index("Reopened by")


def test_a_viewer_sees_the_state_but_cannot_change_it(
    member: Callable[..., Member], twilio_post: Post, db: Any
) -> None:
    anna, vera = member("Anna"), member("Vera", "viewer")
    receive(twilio_post, FIRST)
    anna.set_state(FIRST, assignee="me", priority="low")

    page = vera.client.get("/inbox", params={"c": FIRST})
    assert page.status_code == 200
    assert 'class="state-readonly"' in page.text
    assert '<select id="state-status"' not in page.text
    assert "Assign to me" not in page.text
    assert 'class="chat-composer"' not in page.text
    refused = vera.set_state(FIRST, status="resolved")
    assert refused.status_code == 403
    assert state_of(db, FIRST) == ("open", anna.id, "low")
    # Reading is the viewer's own business: their unread count only.
    assert vera.client.post(f"/inbox/{FIRST}/read", headers=vera.htmx()).status_code == 200
    readers = db.scalars(select(ConversationRead.user_id)).all()
    assert readers == [vera.id]


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"status": "closed"}, "&#39;closed&#39; is not a choice for status"),
        ({"priority": "asap"}, "&#39;asap&#39; is not a choice for priority"),
        ({"assignee": "someone"}, "&#39;someone&#39; is not a choice for assignee"),
        ({"assignee": "999999"}, "No user has the id 999999"),
        ({"status": "snoozed", "snoozed_until": ""}, "needs snoozed_until"),
        ({"status": "snoozed", "snoozed_until": "2001-01-01T10:00:00Z"}, "in the future"),
        ({"status": "snoozed", "snoozed_until": "tomorrow"}, "is not a date and time"),
        ({}, "Nothing to change"),
    ],
)
def test_bad_values_are_a_notice_and_change_nothing(
    member: Callable[..., Member],
    twilio_post: Post,
    db: Any,
    fields: dict[str, str],
    says: str,
) -> None:
    anna = member("Anna")
    receive(twilio_post, FIRST)
    answer = anna.set_state(FIRST, **fields)
    assert answer.status_code in (400, 422), answer.text
    assert answer.headers["HX-Retarget"] == "#notices"
    assert 'class="notice notice-error"' in answer.text
    assert says in answer.text
    assert state_of(db, FIRST) == ("open", None, "none")
    assert db.scalars(select(ConversationEvent.id)).all() == []


def test_a_locked_user_or_a_viewer_cannot_be_given_a_conversation(
    member: Callable[..., Member], twilio_post: Post, db: Any
) -> None:
    anna, vera = member("Anna"), member("Vera", "viewer")
    receive(twilio_post, FIRST)
    page = anna.client.get(f"/inbox/{FIRST}/state").text
    assert f'<option value="{anna.id}"' in page
    assert f'<option value="{vera.id}"' not in page
    refused = anna.set_state(FIRST, assignee=str(vera.id))
    assert "Vera is a viewer and cannot answer customers" in refused.text
    assert state_of(db, FIRST) == ("open", None, "none")
