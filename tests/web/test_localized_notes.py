"""Notes stored in English (a connection test's result, a message's error, a campaign's
pause note): English in the API, in the reader's language in the panel."""

from __future__ import annotations

import html
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from relaydesk.contacts.models import Contact
from relaydesk.messaging.models import Message
from tests.conftest import wait_for
from tests.web.conftest import csrf_of

POLISH = {"Accept-Language": "pl-PL,pl;q=0.9"}


def polish_panel(panel: Callable[[str], httpx.Client], role: str) -> httpx.Client:
    client = panel(role)
    client.headers.update(POLISH)
    client.headers.update({"X-CSRF-Token": csrf_of(client), "HX-Request": "true"})
    return client


def test_the_twilio_connection_test_reads_in_polish_in_the_panel(
    panel: Callable[[str], httpx.Client], api: httpx.Client
) -> None:
    by_api = api.post("/api/settings/twilio/test").json()
    assert by_api["ok"] is True, by_api
    assert by_api["detail"] == (
        "Connected to the sandbox emulator: account 'relaydesk sandbox' (Trial, active)"
    )

    admin = polish_panel(panel, "admin")
    shown = admin.post("/settings/twilio/test")
    assert shown.status_code == 200, shown.text
    text = html.unescape(shown.text)
    assert "Połączono z emulatorem piaskownicy: konto 'relaydesk sandbox' (Trial, active)" in text
    assert "Connected to" not in text


def test_a_scheduled_message_refused_at_its_time_says_why_in_polish(
    panel: Callable[[str], httpx.Client],
    api: httpx.Client,
    db: Any,
    twilio_post: Callable[..., httpx.Response],
) -> None:
    from relaydesk.core.db import session_scope, utcnow
    from relaydesk.messaging import delivery

    number = "+48600100951"
    later = (utcnow() + timedelta(hours=2)).isoformat()
    created = api.post("/api/send-message", json={"to": number, "body": "Jutro", "send_at": later})
    assert created.status_code == 201, created.text
    message_id = created.json()["id"]
    params = {"MessageSid": "SM" + secrets.token_hex(16), "From": number, "To": "+15005550006"}
    twilio_post("/twilio/inbound", {**params, "Body": "STOP"})
    wait_for(
        lambda: db.scalar(select(Contact.opted_out_at).where(Contact.phone == number)),
        what="the opt-out",
    )
    past = utcnow() - timedelta(seconds=1)
    with session_scope() as session:
        session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(scheduled_at=past, next_attempt_at=past)
        )
    assert delivery.deliver(message_id).state == "refused"
    stored = db.scalar(select(Message.error_message).where(Message.id == message_id))
    assert stored.startswith(f"Not sent at its scheduled time: {number} unsubscribed on ")

    operator = polish_panel(panel, "operator")
    thread = html.unescape(operator.get(f"/chat/{number}/thread").text)
    assert f"Nie wysłano w zaplanowanym czasie: {number} wypisał się " in thread
    assert "(odpisał STOP); nic nie może zostać wysłane, dopóki nie odpisze START" in thread
    assert "Not sent at its scheduled time" not in thread


def test_a_campaign_paused_by_twilio_refusals_explains_itself_in_polish(
    panel: Callable[[str], httpx.Client], api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relaydesk.core.config import get_settings

    monkeypatch.setattr(get_settings(), "campaign_rate_mps", 100.0)
    monkeypatch.setattr(get_settings(), "campaign_pause_after_failures", 2)
    monkeypatch.setattr(get_settings(), "campaign_concurrency", 1)
    # Twilio's magic numbers: an invalid 'To', then one it cannot route; one good one waits.
    numbers = "+15005550001 +15005550002 600100952"
    bid = api.post("/api/multi-sms/batches", json={"numbers": numbers, "body": "x"}).json()["id"]
    view = wait_for(
        lambda: (v := api.get(f"/api/multi-sms/batches/{bid}").json())["status"] == "paused" and v,
        what="the automatic pause",
    )
    assert view["note"] == (
        "Paused after 2 failures in a row; "
        "last: Twilio cannot route a message from this sender to this number"
    )

    operator = polish_panel(panel, "operator")
    history = html.unescape(operator.get("/multi-sms/batches").text)
    assert (
        "Wstrzymano po 2 kolejnych niepowodzeniach; "
        "ostatnie: Twilio nie może przekazać wiadomości od tego nadawcy na ten numer"
    ) in history
    assert "Paused after" not in history
    recipients = html.unescape(operator.get(f"/multi-sms/batches/{bid}/recipients").text)
    assert "Numer 'To' nie jest prawidłowym numerem telefonu" in recipients
    assert "Twilio nie może przekazać wiadomości od tego nadawcy na ten numer" in recipients
    assert "is not a valid phone number" not in recipients
    api.post(f"/api/multi-sms/batches/{bid}/cancel")
