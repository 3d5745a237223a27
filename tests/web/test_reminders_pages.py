"""The Reminders tab and scheduled messages in the Messages tab, over plain HTTP."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.web.test_automation_pages import as_htmx, main_of

Panel = Callable[[str], httpx.Client]
ROLES = ("viewer", "operator", "admin")


def later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def make_reminder(api: httpx.Client, to: str, body: str = "Przypomnienie") -> dict[str, Any]:
    payload = {"to": to, "body": body, "interval_minutes": 45, "start_at": later(days=1)}
    answer = api.post("/api/reminders", json=payload)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


@pytest.mark.parametrize("role", ROLES)
def test_reminders_tab_renders_for_every_role(panel: Panel, api: httpx.Client, role: str) -> None:
    make_reminder(api, "+48600100701", "Odbierz paczkę")
    client = panel(role)
    page = client.get("/reminders")
    assert page.status_code == 200
    nav = re.findall(r'<li><a href="(/[a-z-]+)"', page.text)
    assert nav[:7] == [
        "/inbox", "/messages", "/contacts", "/auto-reply", "/ai", "/assistants", "/reminders"
    ], nav  # fmt: skip
    assert '<a href="/reminders" aria-current="page">' in page.text
    content = main_of(page.text)
    assert "+48600100701" in content and "Odbierz paczkę" in content
    assert "every 45 min" in content
    assert 'data-state="active"' in content
    if role == "viewer":
        assert "<form" not in content and "hx-post" not in content
    else:
        assert 'hx-post="/reminders"' in content
        assert "Pause" in content and "Delete" in content


def test_operator_creates_pauses_resumes_and_deletes_in_the_panel(
    panel: Panel, api: httpx.Client
) -> None:
    client = panel("operator")
    headers = as_htmx(client)
    form = {"to": "600 100 702", "body": "Wizyta jutro", "interval_minutes": "120"}
    created = client.post("/reminders", data={**form, "start_at": later(hours=2)}, headers=headers)
    assert created.status_code == 200, created.text
    assert "Reminder saved." in created.text
    assert "+48600100702" in created.text
    [reminder] = api.get("/api/reminders").json()
    assert reminder["interval_minutes"] == 120
    assert reminder["created_by"].startswith("user:")
    rid = reminder["id"]

    paused = client.post(f"/reminders/{rid}/pause", headers=headers)
    assert "Reminder paused." in paused.text and 'data-state="paused"' in paused.text
    assert api.get(f"/api/reminders/{rid}").json()["status"] == "paused"
    resumed = client.post(f"/reminders/{rid}/resume", headers=headers)
    assert 'data-state="active"' in resumed.text
    deleted = client.post(f"/reminders/{rid}/delete", headers=headers)
    assert "Reminder deleted." in deleted.text
    assert api.get("/api/reminders").json() == []


def test_a_bad_reminder_form_answers_with_a_notice(panel: Panel, api: httpx.Client) -> None:
    client = panel("operator")
    headers = as_htmx(client)
    for form, words in (
        ({"to": "+48600100703", "body": "x", "interval_minutes": "often"}, "whole number"),
        ({"to": "+48600100703", "body": "x", "interval_minutes": "0"}, "between 1 and"),
        ({"to": "not a number", "body": "x", "interval_minutes": "5"}, "not a valid phone"),
        (
            {"to": "+48600100703", "body": "x", "interval_minutes": "5", "start_at": "soon"},
            "not a date and time",
        ),
    ):
        answer = client.post("/reminders", data=form, headers=headers)
        assert answer.status_code == 422, form
        assert answer.headers["HX-Retarget"] == "#notices"
        assert words in answer.text, form
    assert api.get("/api/reminders").json() == []


def test_viewers_cannot_change_reminders(panel: Panel, api: httpx.Client) -> None:
    rid = make_reminder(api, "+48600100704")["id"]
    viewer = panel("viewer")
    headers = as_htmx(viewer)
    form = {"to": "+48600100705", "body": "x", "interval_minutes": "5"}
    assert viewer.post("/reminders", data=form, headers=headers).status_code == 403
    assert viewer.post(f"/reminders/{rid}/pause", headers=headers).status_code == 403
    assert viewer.post(f"/reminders/{rid}/delete", headers=headers).status_code == 403
    assert api.get(f"/api/reminders/{rid}").json()["status"] == "active"


def test_the_list_shows_the_last_outcome_and_the_history(
    panel: Panel, api: httpx.Client, twilio_post: Callable[..., httpx.Response]
) -> None:
    from relaydesk.reminders import tasks
    from tests.reminders.conftest import set_next_run

    rid = make_reminder(api, "+48600100706")["id"]
    set_next_run(rid, datetime.now(UTC) - timedelta(seconds=1))
    tasks.run(rid)
    client = panel("viewer")
    page = main_of(client.get("/reminders").text)
    assert 'data-outcome="sent"' in page and "last sent:" in page
    history = client.get(f"/reminders/{rid}/runs").text
    assert 'data-outcome="sent"' in history

    twilio_post(
        "/twilio/inbound",
        {
            "MessageSid": "SM" + "e" * 32,
            "From": "+48600100706",
            "To": "+15005550006",
            "Body": "STOP",
        },
    )
    set_next_run(rid, datetime.now(UTC) - timedelta(seconds=1))
    tasks.run(rid)
    page = main_of(client.get("/reminders").text)
    assert "last run skipped:" in page
    assert "the customer unsubscribed (STOP)" in page
    history = client.get(f"/reminders/{rid}/runs").text
    assert history.count("<li") == 2


def test_messages_tab_schedules_lists_and_cancels(panel: Panel, api: httpx.Client) -> None:
    operator = panel("operator")
    headers = as_htmx(operator)
    send_at = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    answer = operator.post(
        "/messages/send",
        data={"to": "+48600100707", "body": "Na później", "send_at": send_at.isoformat()},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    assert (
        "data-scheduled" in answer.text and "Message to +48600100707 scheduled for" in answer.text
    )
    [scheduled] = api.get("/api/scheduled-messages").json()
    assert datetime.fromisoformat(scheduled["scheduled_at"]) == send_at
    assert scheduled["source"] == "operator"

    viewer_page = main_of(panel("viewer").get("/messages").text)
    assert f'data-scheduled-id="{scheduled["id"]}"' in viewer_page
    assert f"/messages/scheduled/{scheduled['id']}/cancel" not in viewer_page
    page = main_of(operator.get("/messages").text)
    assert f"/messages/scheduled/{scheduled['id']}/cancel" in page
    assert 'data-utc-field="send_at"' in page

    canceled = operator.post(f"/messages/scheduled/{scheduled['id']}/cancel", headers=headers)
    assert canceled.status_code == 200
    assert "will not be sent" in canceled.text
    assert api.get("/api/scheduled-messages").json() == []
    assert "data-scheduled-id" not in operator.get("/messages/scheduled").text
    again = operator.post(f"/messages/scheduled/{scheduled['id']}/cancel", headers=headers)
    assert again.status_code == 409

    # The chat's composer schedules too.
    chat = operator.post(
        "/chat/+48600100707/send",
        data={"body": "Z czatu", "channel": "sms", "send_at": later(hours=1)},
        headers=headers,
    )
    assert chat.status_code == 200 and "data-scheduled" in chat.text
    past = operator.post(
        "/messages/send",
        data={"to": "+48600100707", "body": "x", "send_at": later(minutes=-3)},
        headers=headers,
    )
    assert past.status_code == 422 and "in the past" in past.text
