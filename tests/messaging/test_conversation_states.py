"""A conversation's state, owner and priority: changes, events, reopening and snoozes."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select, update

from relaydesk.auth.models import User
from relaydesk.core.db import session_scope
from relaydesk.core.models import AuditEntry
from relaydesk.messaging import tasks as messaging_tasks
from relaydesk.messaging.models import Conversation, ConversationEvent
from tests.conftest import FrozenClock, LiveServer, Member, customer_writes

Post = Callable[..., httpx.Response]
CUSTOMER = "+48600100700"


def receive(post: Post, sender: str = CUSTOMER, body: str = "Dzień dobry") -> None:
    customer_writes(post, sender, body)


def thread(client: httpx.Client, participant: str = CUSTOMER) -> dict[str, Any]:
    answer = client.get(f"/api/conversations/{participant}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def listed(client: httpx.Client, **filters: Any) -> list[str]:
    answer = client.get("/api/conversations", params=filters)
    assert answer.status_code == 200, answer.text
    return [item["participant"] for item in answer.json()["items"]]


def test_a_new_conversation_is_open_unassigned_and_without_priority(
    twilio_post: Post, api: httpx.Client
) -> None:
    receive(twilio_post)
    item = api.get("/api/conversations").json()["items"][0]
    assert (item["status"], item["assignee_id"], item["priority"]) == ("open", None, "none")
    assert item["snoozed_until"] is None
    state = thread(api)
    assert (state["status"], state["assignee"], state["events"]) == ("open", None, [])


def test_assigning_resolving_and_prioritising_are_events_and_audit_entries(
    twilio_post: Post, team: Callable[..., Member], db: Any
) -> None:
    anna, piotr = team("Anna"), team("Piotr")
    receive(twilio_post)

    changed = anna.client.patch(
        f"/api/conversations/{CUSTOMER}", json={"assignee_id": piotr.id, "priority": "high"}
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["assignee"], changed.json()["priority"]) == ("Piotr", "high")
    resolved = piotr.client.patch(f"/api/conversations/{CUSTOMER}", json={"status": "resolved"})
    assert resolved.status_code == 200, resolved.text

    events = [(e["kind"], e["actor"], e["data"].get("to")) for e in thread(anna.client)["events"]]
    assert events == [
        ("assigned", "Anna", "Piotr"),
        ("priority", "Anna", "high"),
        ("status", "Piotr", "resolved"),
    ]
    actions = db.scalars(
        select(AuditEntry.action).where(AuditEntry.target == CUSTOMER).order_by(AuditEntry.id)
    ).all()
    assert actions == ["conversation.assigned", "conversation.priority", "conversation.status"]

    # The same change again changes nothing and records nothing.
    piotr.client.patch(f"/api/conversations/{CUSTOMER}", json={"status": "resolved"})
    assert len(thread(anna.client)["events"]) == 3


def test_filters_mine_unassigned_a_user_a_state_and_a_priority(
    twilio_post: Post, team: Callable[..., Member]
) -> None:
    anna, piotr = team("Anna"), team("Piotr")
    first, second, third = "+48600100701", "+48600100702", "+48600100703"
    for number in (first, second, third):
        receive(twilio_post, number)
    anna.client.patch(f"/api/conversations/{first}", json={"assignee_id": anna.id})
    anna.client.patch(
        f"/api/conversations/{second}",
        json={"assignee_id": piotr.id, "status": "pending", "priority": "urgent"},
    )

    assert listed(anna.client, assignee="me") == [first]
    assert listed(piotr.client, assignee="me") == [second]
    assert listed(anna.client, assignee="none") == [third]
    assert listed(anna.client, assignee=str(piotr.id)) == [second]
    assert listed(anna.client, status="pending") == [second]
    assert set(listed(anna.client, status="open")) == {first, third}
    assert listed(anna.client, priority="urgent") == [second]
    assert listed(anna.client, status="resolved") == []


def test_a_customer_message_reopens_a_resolved_conversation_keeping_its_owner(
    twilio_post: Post, team: Callable[..., Member]
) -> None:
    anna = team("Anna")
    receive(twilio_post)
    anna.client.patch(
        f"/api/conversations/{CUSTOMER}", json={"assignee_id": anna.id, "status": "resolved"}
    )
    receive(twilio_post, body="Jeszcze jedno pytanie")

    state = thread(anna.client)
    assert (state["status"], state["assignee_id"]) == ("open", anna.id)
    assert [(e["kind"], e["actor"]) for e in state["events"]][-1] == ("reopened", "customer")
    assert listed(anna.client, assignee="me", status="open") == [CUSTOMER]


def test_a_snooze_ends_by_itself_at_its_time_and_a_message_ends_it_sooner(
    twilio_post: Post, team: Callable[..., Member], clock: FrozenClock
) -> None:
    anna = team("Anna")
    receive(twilio_post)
    receive(twilio_post, "+48600100704")
    now = clock.freeze()
    until = now + timedelta(hours=2)
    for number in (CUSTOMER, "+48600100704"):
        snoozed = anna.client.patch(
            f"/api/conversations/{number}",
            json={"status": "snoozed", "snoozed_until": until.isoformat()},
        )
        assert snoozed.status_code == 200, snoozed.text
    assert datetime.fromisoformat(thread(anna.client)["snoozed_until"]) == until

    # The customer writes before the time: open again at once.
    receive(twilio_post, "+48600100704", "Halo?")
    assert thread(anna.client, "+48600100704")["status"] == "open"

    # An hour later the other is still snoozed; past its time, the sweep opens it.
    # (The scheduler runs this sweep every minute; here the test runs it.)
    clock.move(timedelta(hours=1))
    messaging_tasks.wake_snoozed()
    assert thread(anna.client)["status"] == "snoozed"
    clock.move(timedelta(hours=1, seconds=1))
    messaging_tasks.wake_snoozed()
    state = thread(anna.client)
    assert state["status"] == "open"
    assert state["snoozed_until"] is None
    assert state["events"][-1]["kind"] == "snooze_ended"
    assert state["events"][-1]["actor"] == "clock"


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"status": "snoozed"}, "snoozed_until"),
        ({"status": "snoozed", "snoozed_until": "2020-01-01T09:00:00+01:00"}, "future"),
        ({"status": "snoozed", "snoozed_until": "2999-01-01T09:00:00+01:00"}, "a year"),
        ({"status": "snoozed", "snoozed_until": "2030-01-01T09:00:00"}, "time zone"),
        ({"status": "open", "snoozed_until": "2030-01-01T09:00:00+01:00"}, "snoozed"),
        ({"snoozed_until": "2030-01-01T09:00:00+01:00"}, "snoozed"),
        ({"status": "closed"}, "status"),
        ({"status": None}, "status"),
        ({"priority": "critical"}, "priority"),
        ({"assignee_id": 999_999_999}, "No user"),
        ({"assignee_id": 10**30}, "assignee_id"),
        ({"assignee_id": "1; DROP TABLE users"}, "assignee_id"),
        ({"owner": 1}, "owner"),
    ],
)
def test_bad_changes_are_refused_with_a_reason_and_change_nothing(
    twilio_post: Post, api: httpx.Client, payload: dict[str, Any], words: str
) -> None:
    receive(twilio_post)
    answer = api.patch(f"/api/conversations/{CUSTOMER}", json=payload)
    assert answer.status_code == 422, answer.text
    assert words in answer.text
    state = thread(api)
    assert (state["status"], state["assignee_id"], state["priority"], state["events"]) == (
        "open",
        None,
        "none",
        [],
    )


def test_locked_users_and_viewers_are_never_given_a_conversation(
    twilio_post: Post, team: Callable[..., Member], api: httpx.Client
) -> None:
    anna, gone, reader = team("Anna"), team("Gone"), team("Reader", "viewer")
    receive(twilio_post)
    with session_scope() as session:
        session.execute(update(User).where(User.id == gone.id).values(is_active=False))
    locked = anna.client.patch(f"/api/conversations/{CUSTOMER}", json={"assignee_id": gone.id})
    assert locked.status_code == 422 and "locked" in locked.json()["detail"]
    viewer = anna.client.patch(f"/api/conversations/{CUSTOMER}", json={"assignee_id": reader.id})
    assert viewer.status_code == 422 and "viewer" in viewer.json()["detail"]
    assert thread(api)["assignee_id"] is None


def test_viewers_read_operators_change_and_unknown_numbers_are_404(
    twilio_post: Post, team: Callable[..., Member], server: LiveServer
) -> None:
    reader = team("Reader", "viewer")
    receive(twilio_post)
    assert reader.client.get("/api/conversations", params={"status": "open"}).status_code == 200
    refused = reader.client.patch(f"/api/conversations/{CUSTOMER}", json={"status": "resolved"})
    assert refused.status_code == 403
    anonymous = httpx.patch(
        f"{server.url}/api/conversations/{CUSTOMER}", json={"status": "resolved"}, timeout=30
    )
    assert anonymous.status_code == 401
    operator = team("Olga")
    missing = operator.client.patch("/api/conversations/+48600999999", json={"status": "open"})
    assert missing.status_code == 404
    bad = operator.client.patch("/api/conversations/not-a-number", json={"status": "open"})
    assert bad.status_code == 422


def test_unread_counts_are_per_user(twilio_post: Post, team: Callable[..., Member]) -> None:
    anna, piotr = team("Anna"), team("Piotr")
    receive(twilio_post, body="Pierwsza")
    receive(twilio_post, body="Druga")

    def mine(member: Member) -> int:
        items = member.client.get("/api/conversations").json()["items"]
        return int(next(i for i in items if i["participant"] == CUSTOMER)["unread_count"])

    assert (mine(anna), mine(piotr)) == (2, 2)
    assert anna.client.post(f"/api/conversations/{CUSTOMER}/read").status_code == 204
    assert (mine(anna), mine(piotr)) == (0, 2)
    assert listed(anna.client, unread="true") == []
    assert listed(piotr.client, unread="true") == [CUSTOMER]
    receive(twilio_post, body="Trzecia")
    assert (mine(anna), mine(piotr)) == (1, 3)


def test_assignee_me_needs_a_token_that_belongs_to_a_user(api: httpx.Client) -> None:
    answer = api.get("/api/conversations", params={"assignee": "me"})
    assert answer.status_code == 422
    assert "needs a user" in answer.json()["detail"]
    for value in ("someone", "-1", "1" * 40, "١٢"):
        assert api.get("/api/conversations", params={"assignee": value}).status_code == 422


def test_deleting_a_user_unassigns_their_conversations(
    twilio_post: Post, team: Callable[..., Member], db: Any
) -> None:
    anna = team("Anna")
    receive(twilio_post)
    anna.client.patch(f"/api/conversations/{CUSTOMER}", json={"assignee_id": anna.id})
    with session_scope() as session:
        session.delete(session.get(User, anna.id))
    assert db.scalar(select(Conversation.assignee_id)) is None
    # The events keep the names they were written with.
    assert db.scalar(select(ConversationEvent.actor)) == "Anna"


def test_state_times_are_stored_in_utc(
    twilio_post: Post, api: httpx.Client, team: Callable[..., Member]
) -> None:
    anna = team("Anna")
    receive(twilio_post)
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    local = until.astimezone(ZoneInfo("Europe/Warsaw"))
    anna.client.patch(
        f"/api/conversations/{CUSTOMER}",
        json={"status": "snoozed", "snoozed_until": local.isoformat()},
    )
    assert datetime.fromisoformat(thread(api)["snoozed_until"]) == until


def test_a_new_channel_of_the_same_customer_keeps_their_owner_priority_and_labels(
    twilio_post: Post, team: Callable[..., Member], api: httpx.Client
) -> None:
    anna = team("Anna")
    receive(twilio_post)  # SMS
    assert api.post("/api/labels", json={"name": "VIP"}).status_code == 201
    anna.client.patch(
        f"/api/conversations/{CUSTOMER}", json={"assignee_id": anna.id, "priority": "high"}
    )
    assert api.put(f"/api/conversations/{CUSTOMER}/labels", json={"labels": ["VIP"]}).is_success
    answer = twilio_post(
        "/twilio/inbound",
        {
            "MessageSid": "SM" + secrets.token_hex(16),
            "From": f"whatsapp:{CUSTOMER}",
            "To": "whatsapp:+15005550006",
            "Body": "Piszę teraz z WhatsAppa",
            "NumMedia": "0",
        },
    )
    assert answer.status_code == 200

    rows = [
        item
        for item in anna.client.get("/api/conversations").json()["items"]
        if item["participant"] == CUSTOMER
    ]
    assert sorted(item["channel"] for item in rows) == ["sms", "whatsapp"]
    for item in rows:
        assert (item["assignee_id"], item["priority"], item["labels"]) == (anna.id, "high", ["VIP"])
    assert len(listed(anna.client, label="vip")) == 2
    assert len(listed(anna.client, assignee="me")) == 2
