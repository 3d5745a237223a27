"""Scheduled single messages: stored at once, sent once when due, cancelable, re-checked."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from relaydesk.contacts.models import Contact
from relaydesk.core.models import AuditEntry
from relaydesk.messaging.models import Message
from tests.conftest import wait_for


def later(**delta: float) -> str:
    """An ISO 8601 time with its zone, `delta` from now."""
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def emulator_messages(to: str) -> list[Any]:
    """What Twilio's stand-in received for `to`."""
    from relaydesk.channels.sandbox.runtime import get_emulator

    return [m for m in get_emulator().store.for_number(to) if m.direction.startswith("outbound")]


def make_due(message_id: int) -> None:
    """Move the message's send time into the past (instead of waiting for it)."""
    from relaydesk.core.db import session_scope, utcnow

    past = utcnow() - timedelta(seconds=1)
    with session_scope() as session:
        session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(scheduled_at=past, next_attempt_at=past)
        )


def schedule(api: httpx.Client, to: str, body: str, **fields: Any) -> dict[str, Any]:
    answer = api.post(
        "/api/send-message", json={"to": to, "body": body, "send_at": later(hours=2), **fields}
    )
    assert answer.status_code == 201, answer.text
    message: dict[str, Any] = answer.json()
    return message


def test_a_scheduled_message_waits_and_goes_out_once_when_due(api: httpx.Client, db: Any) -> None:
    from relaydesk.messaging import delivery, tasks

    send_at = later(hours=2)
    answer = api.post(
        "/api/send-message",
        json={"to": "600 100 401", "body": "Jutro o 10:00 wizyta.", "send_at": send_at},
    )
    assert answer.status_code == 201, answer.text
    message = answer.json()
    assert message["status"] == "scheduled"
    assert message["sid"] is None
    assert message["participant"] == "+48600100401"
    assert datetime.fromisoformat(message["scheduled_at"]) == datetime.fromisoformat(send_at)
    listed = api.get("/api/scheduled-messages").json()
    assert [m["id"] for m in listed] == [message["id"]]

    # Nothing sends it before its time: not the sweep, not a stray delivery job.
    tasks.sweep()
    assert delivery.deliver(message["id"]).state == "skipped"
    assert db.scalar(select(Message.status).where(Message.id == message["id"])) == "scheduled"
    assert emulator_messages("+48600100401") == []

    make_due(message["id"])
    tasks.sweep()  # the safety net queues it; the worker delivers it
    wait_for(
        lambda: db.scalar(select(Message.sid).where(Message.id == message["id"])),
        what="the scheduled message handed to Twilio",
    )
    tasks.sweep()
    assert delivery.deliver(message["id"]).state == "skipped"
    remote = emulator_messages("+48600100401")
    assert [m.body for m in remote] == ["Jutro o 10:00 wizyta."]
    assert api.get("/api/scheduled-messages").json() == []
    stored = api.get(f"/api/messages/{message['id']}").json()
    assert stored["status"] not in ("scheduled", "pending")
    assert stored["scheduled_at"] is not None


def test_scheduled_messages_are_listed_soonest_first(api: httpx.Client) -> None:
    late = schedule(api, "+48600100402", "later", send_at=later(days=3))
    soon = schedule(api, "+48600100403", "sooner", send_at=later(minutes=30))
    api.post("/api/send-message", json={"to": "+48600100404", "body": "now"})
    listed = api.get("/api/scheduled-messages").json()
    assert [m["id"] for m in listed] == [soon["id"], late["id"]]


def test_a_send_at_without_time_zone_is_utc(api: httpx.Client) -> None:
    naive = (datetime.now(UTC) + timedelta(hours=5)).replace(tzinfo=None, microsecond=0)
    message = schedule(api, "+48600100405", "naive", send_at=naive.isoformat())
    assert datetime.fromisoformat(message["scheduled_at"]) == naive.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("send_at", "words"),
    [
        (later(minutes=-5), "in the past"),
        (later(days=400), "more than a year ahead"),
        ("tomorrow morning", "send_at"),
        ("2030-13-45T10:00:00Z", "send_at"),
    ],
    # Fixed ids: ids made of the current time differ between xdist workers.
    ids=["in-the-past", "over-a-year-ahead", "not-a-date", "impossible-date"],
)
def test_a_bad_send_at_is_422_and_stores_nothing(
    api: httpx.Client, db: Any, send_at: str, words: str
) -> None:
    answer = api.post(
        "/api/send-message", json={"to": "+48600100406", "body": "hi", "send_at": send_at}
    )
    assert answer.status_code == 422, answer.text
    assert words in answer.json()["detail"]
    assert db.scalar(select(func.count()).select_from(Message)) == 0


def test_cancel_before_the_time_and_not_after(api: httpx.Client, db: Any) -> None:
    from relaydesk.messaging import delivery, tasks

    message = schedule(api, "+48600100407", "cancel me")
    canceled = api.delete(f"/api/scheduled-messages/{message['id']}")
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    assert api.get("/api/scheduled-messages").json() == []
    audit = db.scalar(select(AuditEntry).where(AuditEntry.action == "message.cancel"))
    assert audit.target == f"message:{message['id']}"
    # Its time comes: nothing goes out.
    make_due(message["id"])
    tasks.sweep()
    assert delivery.deliver(message["id"]).state == "skipped"
    assert emulator_messages("+48600100407") == []
    again = api.delete(f"/api/scheduled-messages/{message['id']}")
    assert again.status_code == 409
    assert again.json()["code"] == "not_scheduled"
    assert api.delete("/api/scheduled-messages/999999").status_code == 404

    # Once handed to Twilio it can no longer be canceled.
    sent = schedule(api, "+48600100408", "too late to cancel")
    make_due(sent["id"])
    assert delivery.deliver(sent["id"]).state == "submitted"
    late = api.delete(f"/api/scheduled-messages/{sent['id']}")
    assert late.status_code == 409
    assert "canceled" in late.json()["detail"]
    assert len(emulator_messages("+48600100408")) == 1


def test_cancel_needs_the_operator_role(
    api: httpx.Client, server: Any, make_token: Callable[[str], str]
) -> None:
    message = schedule(api, "+48600100409", "viewer cannot cancel")
    viewer = {"Authorization": f"Bearer {make_token('viewer')}"}
    url = f"{server.url}/api/scheduled-messages/{message['id']}"
    assert httpx.delete(url, headers=viewer).status_code == 403
    assert httpx.get(f"{server.url}/api/scheduled-messages", headers=viewer).status_code == 200


def test_a_customer_who_opts_out_meanwhile_does_not_get_it(
    api: httpx.Client, db: Any, twilio_post: Callable[..., httpx.Response]
) -> None:
    from relaydesk.messaging import delivery

    message = schedule(api, "+48600100410", "Promocja tylko dziś!")
    params = {"MessageSid": "SM" + secrets.token_hex(16), "From": "+48600100410"}
    twilio_post("/twilio/inbound", {**params, "To": "+15005550006", "Body": "STOP"})
    wait_for(
        lambda: db.scalar(select(Contact.opted_out_at).where(Contact.phone == "+48600100410")),
        what="the opt-out",
    )
    make_due(message["id"])
    assert delivery.deliver(message["id"]).state == "refused"
    stored = db.scalar(select(Message).where(Message.id == message["id"]))
    assert stored.status == "failed"
    assert stored.sid is None
    assert "Not sent at its scheduled time" in stored.error_message
    assert "unsubscribed" in stored.error_message
    assert emulator_messages("+48600100410") == []


def test_scheduling_checks_opt_out_and_the_whatsapp_window_up_front(
    api: httpx.Client, twilio_post: Callable[..., httpx.Response]
) -> None:
    params = {"MessageSid": "SM" + secrets.token_hex(16), "To": "+15005550006"}
    twilio_post("/twilio/inbound", {**params, "From": "+48600100411", "Body": "STOP"})
    refused = api.post(
        "/api/send-message", json={"to": "+48600100411", "body": "x", "send_at": later(hours=1)}
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "opted_out"

    # The customer wrote on WhatsApp just now: the window is open for 24 hours.
    twilio_post(
        "/twilio/inbound",
        {
            "MessageSid": "SM" + secrets.token_hex(16),
            "From": "whatsapp:+48600100412",
            "To": "whatsapp:+15005550006",
            "Body": "Hej",
        },
    )
    inside = schedule(api, "whatsapp:+48600100412", "within the window", send_at=later(hours=1))
    assert inside["channel"] == "whatsapp"
    outside = api.post(
        "/api/send-message",
        json={"to": "whatsapp:+48600100412", "body": "too late", "send_at": later(hours=30)},
    )
    assert outside.status_code == 422
    assert outside.json()["code"] == "whatsapp_window_closed"
    assert "at the send time" in outside.json()["detail"]
