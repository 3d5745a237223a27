"""The reminders API: create, list, change, pause, delete, validation and roles."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from relaydesk.core.models import AuditEntry
from tests.reminders.conftest import later

NewReminder = Callable[..., dict[str, Any]]


def test_create_list_change_and_delete_a_reminder(
    api: httpx.Client, db: Any, new_reminder: NewReminder
) -> None:
    start = later(hours=3)
    created = new_reminder("600 100 501", "Weź leki", interval_minutes=90, start_at=start)
    assert created["to"] == "+48600100501"
    assert created["participant"] == "+48600100501"
    assert created["channel"] == "sms"
    assert created["body"] == "Weź leki"
    assert created["interval_minutes"] == 90
    assert created["status"] == "active"
    assert created["enabled"] is True
    assert datetime.fromisoformat(created["next_run_at"]) == datetime.fromisoformat(start)
    assert created["run_count"] == 0
    assert created["last_outcome"] is None
    rid = created["id"]

    other = new_reminder("+48600100502")
    assert [r["id"] for r in api.get("/api/reminders").json()] == [other["id"], rid]
    assert api.get(f"/api/reminders/{rid}").json()["body"] == "Weź leki"

    changed = api.patch(f"/api/reminders/{rid}", json={"body": "Weź leki o 8:00"}).json()
    assert changed["body"] == "Weź leki o 8:00"
    assert changed["interval_minutes"] == 90

    paused = api.patch(f"/api/reminders/{rid}", json={"enabled": False}).json()
    assert paused["status"] == "paused"
    assert paused["next_run_at"] is None
    resumed = api.patch(f"/api/reminders/{rid}", json={"enabled": True}).json()
    assert resumed["status"] == "active"
    # Resumed before its next slot: the cadence is unchanged.
    assert datetime.fromisoformat(resumed["next_run_at"]) == datetime.fromisoformat(start)

    assert api.delete(f"/api/reminders/{rid}").status_code == 204
    assert api.get(f"/api/reminders/{rid}").status_code == 404
    assert api.delete(f"/api/reminders/{rid}").status_code == 404
    actions = db.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.target == f"reminder:{rid}")
        .order_by(AuditEntry.id)
    ).all()
    assert actions == [
        "reminder.create",
        "reminder.update",
        "reminder.update",
        "reminder.update",
        "reminder.delete",
    ]


def test_a_whatsapp_reminder_keeps_its_channel(
    api: httpx.Client, new_reminder: NewReminder, twilio_post: Callable[..., httpx.Response]
) -> None:
    closed = api.post(
        "/api/reminders",
        json={"to": "whatsapp:+48600100503", "body": "Hej", "interval_minutes": 60},
    )
    assert closed.status_code == 422
    assert closed.json()["code"] == "whatsapp_window_closed"
    twilio_post(
        "/twilio/inbound",
        {
            "MessageSid": "SM" + secrets.token_hex(16),
            "From": "whatsapp:+48600100503",
            "To": "whatsapp:+15005550006",
            "Body": "Cześć",
        },
    )
    created = new_reminder("whatsapp:+48600100503", start_at=later(hours=1))
    assert created["channel"] == "whatsapp"
    assert created["to"] == "whatsapp:+48600100503"
    assert created["participant"] == "+48600100503"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"interval_minutes": 0}, "interval_minutes"),
        ({"interval_minutes": "often"}, "interval_minutes"),
        ({"interval_minutes": 10_000_000}, "interval_minutes"),
        ({"body": ""}, "body"),
        ({"body": "   "}, "needs a text"),
        ({"body": "x" * 1601}, "body"),
        ({"to": "12ab"}, "not a valid phone number"),
        ({"to": "+48 12"}, "not a valid phone number"),
        ({"start_at": later(hours=-2)}, "in the past"),
        ({"start_at": later(days=400)}, "more than a year ahead"),
        ({"start_at": "next monday"}, "start_at"),
        ({"every": 5}, "Unknown field"),
    ],
)
def test_bad_input_is_422_with_a_reason_and_creates_nothing(
    api: httpx.Client, fields: dict[str, Any], words: str
) -> None:
    payload = {"to": "+48600100504", "body": "Przypomnienie", "interval_minutes": 30, **fields}
    answer = api.post("/api/reminders", json=payload)
    assert answer.status_code == 422, answer.text
    assert words in answer.json()["detail"]
    assert api.get("/api/reminders").json() == []


def test_patch_validates_and_unknown_reminders_are_404(
    api: httpx.Client, new_reminder: NewReminder
) -> None:
    rid = new_reminder("+48600100505")["id"]
    assert api.patch(f"/api/reminders/{rid}", json={"interval_minutes": 0}).status_code == 422
    assert api.patch(f"/api/reminders/{rid}", json={"body": "  "}).status_code == 422
    assert api.patch(f"/api/reminders/{rid}", json={"to": "+48600100506"}).status_code == 422
    assert api.patch("/api/reminders/999999", json={"enabled": False}).status_code == 404
    assert api.get("/api/reminders/999999/runs").status_code == 404


def test_an_unsubscribed_number_is_refused_up_front(
    api: httpx.Client, twilio_post: Callable[..., httpx.Response]
) -> None:
    params = {"MessageSid": "SM" + secrets.token_hex(16), "To": "+15005550006"}
    twilio_post("/twilio/inbound", {**params, "From": "+48600100507", "Body": "STOP"})
    answer = api.post(
        "/api/reminders", json={"to": "+48600100507", "body": "Hej", "interval_minutes": 60}
    )
    assert answer.status_code == 409
    assert answer.json()["code"] == "opted_out"


def test_viewers_read_and_operators_change(
    server: Any, make_token: Callable[[str], str], new_reminder: NewReminder
) -> None:
    rid = new_reminder("+48600100508")["id"]
    viewer = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {make_token('viewer')}"}
    )
    operator = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {make_token('operator')}"}
    )
    with viewer, operator:
        assert viewer.get("/api/reminders").status_code == 200
        assert viewer.get(f"/api/reminders/{rid}/runs").status_code == 200
        assert viewer.patch(f"/api/reminders/{rid}", json={"enabled": False}).status_code == 403
        assert viewer.delete(f"/api/reminders/{rid}").status_code == 403
        payload = {
            "to": "+48600100509",
            "body": "x",
            "interval_minutes": 5,
            "start_at": later(days=1),
        }
        assert viewer.post("/api/reminders", json=payload).status_code == 403
        assert operator.post("/api/reminders", json=payload).status_code == 201
        assert operator.delete(f"/api/reminders/{rid}").status_code == 204
