"""The Twilio emulator driven end to end through the real twilio SDK."""

from __future__ import annotations

import json
import re
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from relaydesk.core.config import Settings
from tests.fakes.twilio_callbacks import Captured, Receiver

from .conftest import SandboxServer, SpecValidator

SENDER = "+15005550006"
SID = re.compile(r"^SM[0-9a-f]{32}$")
SERVICE_SID = "MG" + "ab" * 16
MESSAGES = "/2010-04-01/Accounts/{account}/Messages.json"


def last_json(client: Client) -> dict[str, Any]:
    """The raw JSON body the SDK received last (what Twilio itself would have sent)."""
    response = client.http_client._test_only_last_response
    assert response is not None
    return dict(json.loads(response.text))


def statuses(callbacks: list[Captured]) -> list[str]:
    return [c.params["MessageStatus"] for c in callbacks]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_create_answers_201_with_a_spec_valid_queued_message(
    sandbox: SandboxServer, spec: SpecValidator, settings: Settings
) -> None:
    client = sandbox.client()
    msg = client.messages.create(to="+48600100200", from_=SENDER, body="Hello")

    assert client.http_client._test_only_last_response.status_code == 201
    payload = last_json(client)
    spec.message(payload)
    assert SID.match(msg.sid)
    assert msg.status == "queued"
    assert msg.direction == "outbound-api"
    assert msg.account_sid == settings.account_sid
    assert payload["num_segments"] == "1"
    assert payload["num_media"] == "0"
    assert payload["price_unit"] == "USD"
    assert payload["uri"] == f"/2010-04-01/Accounts/{settings.account_sid}/Messages/{msg.sid}.json"


def test_fetch_returns_the_stored_message_also_under_the_embedded_prefix(
    sandbox: SandboxServer, spec: SpecValidator
) -> None:
    created = sandbox.client().messages.create(to="+48600100200", from_=SENDER, body="Hi")

    embedded = sandbox.client(prefix="/sandbox/twilio")
    fetched = embedded.messages(created.sid).fetch()

    spec.message(last_json(embedded))
    assert (fetched.sid, fetched.body, fetched.to) == (created.sid, "Hi", "+48600100200")


def test_fetch_of_unknown_sid_is_404_20404(sandbox: SandboxServer) -> None:
    with pytest.raises(TwilioRestException) as err:
        sandbox.client().messages("SM" + "0" * 32).fetch()
    assert (err.value.status, err.value.code) == (404, 20404)


def test_media_message_gets_an_mm_sid(sandbox: SandboxServer, spec: SpecValidator) -> None:
    client = sandbox.client()
    msg = client.messages.create(
        to="+48600100200",
        from_=SENDER,
        media_url=["https://example.com/a.jpg", "https://example.com/b.jpg"],
    )
    spec.message(last_json(client))
    assert re.match(r"^MM[0-9a-f]{32}$", msg.sid)
    assert msg.num_media == "2"


def test_list_filters_by_to_and_from_and_pages_newest_first(
    sandbox: SandboxServer, spec: SpecValidator, settings: Settings
) -> None:
    client = sandbox.client()
    alice, bob, other_sender = "+48600000001", "+48600000002", "+15005550010"
    sent = [client.messages.create(to=alice, from_=SENDER, body=f"a{i}").sid for i in range(5)]
    client.messages.create(to=bob, from_=SENDER, body="b0")
    client.messages.create(to=alice, from_=other_sender, body="a-other")

    to_alice = client.messages.list(to=alice, from_=SENDER, page_size=2)
    assert [m.sid for m in to_alice] == sent[::-1]
    assert [m.body for m in client.messages.list(from_=other_sender)] == ["a-other"]
    assert len(client.messages.list(to=alice, page_size=2, limit=3)) == 3
    today = datetime.now(UTC)
    assert len(client.messages.list(to=alice, date_sent_after=today)) == 6
    assert client.messages.list(to=alice, date_sent_before=today - timedelta(days=2)) == []

    # The raw pages validate against the spec and their links walk the whole list.
    auth = (settings.account_sid, settings.auth_token)
    url = sandbox.base_url + MESSAGES.format(account=settings.account_sid)
    page = httpx.get(url, params={"To": alice, "PageSize": 4}, auth=auth).json()
    spec.message_list(page)
    assert (page["page"], page["page_size"], page["start"], page["end"]) == (0, 4, 0, 3)
    assert page["previous_page_uri"] is None
    second = httpx.get(sandbox.base_url + page["next_page_uri"], auth=auth).json()
    spec.message_list(second)
    assert len(second["messages"]) == 2 and second["next_page_uri"] is None
    back = httpx.get(sandbox.base_url + second["previous_page_uri"], auth=auth).json()
    assert [m["sid"] for m in back["messages"]] == [m["sid"] for m in page["messages"]]


@pytest.mark.parametrize(
    ("to", "code"),
    [
        ("+15005550001", 21211),
        ("+15005550002", 21612),
        ("+15005550003", 21408),
        ("+15005550004", 21610),
        ("+15005550009", 21614),
    ],
)
def test_magic_numbers_fail_synchronously_and_store_nothing(
    sandbox: SandboxServer, to: str, code: int
) -> None:
    client = sandbox.client()
    with pytest.raises(TwilioRestException) as err:
        client.messages.create(to=to, from_=SENDER, body="x")
    assert (err.value.status, err.value.code) == (400, code)
    assert err.value.uri.endswith("/Messages.json")
    assert client.messages.list(to=to) == []


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"From": SENDER, "Body": "x"}, 21604),
        ({"To": "+48600100200", "Body": "x"}, 21603),
        ({"To": "+48600100200", "From": SENDER}, 21602),
        ({"To": "+48600100200", "From": SENDER, "Body": "x" * 1601}, 21617),
        ({"To": "+48600100200", "From": SENDER, "ContentSid": "HX123"}, 21655),
        ({"To": "+48600100200", "From": SENDER, "Body": "x", "ContentVariables": "{}"}, 21654),
        ({"To": "600100200", "From": SENDER, "Body": "x"}, 21211),
        ({"To": "whatsapp:600", "From": SENDER, "Body": "x"}, 21211),
        ({"To": "+48600100200", "From": "+15005550001", "Body": "x"}, 21212),
    ],
)
def test_invalid_create_requests_get_twilio_error_json(
    sandbox: SandboxServer, settings: Settings, form: dict[str, str], code: int
) -> None:
    url = sandbox.base_url + MESSAGES.format(account=settings.account_sid)
    response = httpx.post(url, data=form, auth=(settings.account_sid, settings.auth_token))

    assert response.status_code == 400
    assert response.json() == {
        "code": code,
        "message": response.json()["message"],
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": 400,
    }


def test_unknown_parameters_are_ignored_and_templates_accepted(
    sandbox: SandboxServer, settings: Settings
) -> None:
    url = sandbox.base_url + MESSAGES.format(account=settings.account_sid)
    form = {
        "To": "whatsapp:+48600100200",
        "From": f"whatsapp:{SENDER}",
        "ContentSid": "HX4b4adba77b8189f09cc4069f16415ea0",  # a template the emulator has
        "ContentVariables": '{"1": "Ania"}',
        "SomethingNew": "yes",
    }
    response = httpx.post(url, data=form, auth=(settings.account_sid, settings.auth_token))
    assert response.status_code == 201, response.text


def test_wrong_or_missing_credentials_are_401_20003(
    sandbox: SandboxServer, settings: Settings
) -> None:
    with pytest.raises(TwilioRestException) as err:
        sandbox.client(token="not-the-token").messages.create(
            to="+48600100200", from_=SENDER, body="x"
        )
    assert (err.value.status, err.value.code) == (401, 20003)

    url = sandbox.base_url + MESSAGES.format(account=settings.account_sid)
    response = httpx.get(url)
    assert response.status_code == 401
    assert response.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }


def test_other_account_in_path_is_404_20404(sandbox: SandboxServer, settings: Settings) -> None:
    url = sandbox.base_url + MESSAGES.format(account="AC" + "0" * 32)
    response = httpx.get(url, auth=(settings.account_sid, settings.auth_token))
    assert response.status_code == 404
    assert response.json()["code"] == 20404


def test_api_rate_limit_answers_429_20429(sandbox: SandboxServer) -> None:
    with sandbox.control() as http:
        http.put("/sandbox/config", json={"api_rps": 0.01}).raise_for_status()
    client = sandbox.client()
    client.messages.create(to="+48600100200", from_=SENDER, body="first")

    with pytest.raises(TwilioRestException) as err:
        client.messages.create(to="+48600100200", from_=SENDER, body="second")
    assert (err.value.status, err.value.code) == (429, 20429)
    assert "Too Many Requests" in err.value.msg


def test_status_callbacks_arrive_signed_sent_then_delivered(
    sandbox: SandboxServer, receiver: Receiver, settings: Settings
) -> None:
    callback = f"{receiver.base_url}/status?leg=1"
    msg = sandbox.client().messages.create(
        to="+48600100200", from_=SENDER, body="Hi", status_callback=callback
    )

    calls = receiver.wait_for(lambda r: r.callbacks_for(msg.sid), 2)
    # Twilio sends no callback for the initial `queued` of a message sent from a number.
    assert statuses(calls) == ["sent", "delivered"]
    for call in calls:
        assert call.url == callback
        assert call.signature_ok(settings.auth_token)
        assert call.headers["i-twilio-idempotency-token"]
        assert call.params["SmsStatus"] == call.params["MessageStatus"]
        assert call.params["AccountSid"] == settings.account_sid
        assert call.params["ApiVersion"] == "2010-04-01"
        assert (call.params["From"], call.params["To"]) == (SENDER, "+48600100200")
        assert call.params["SmsSid"] == msg.sid
        assert "ErrorCode" not in call.params
    assert sandbox.client().messages(msg.sid).fetch().status == "delivered"


def test_messaging_service_message_is_accepted_then_queued_sent_delivered(
    sandbox: SandboxServer, receiver: Receiver, settings: Settings, spec: SpecValidator
) -> None:
    client = sandbox.client()
    msg = client.messages.create(
        to="+48600100200",
        messaging_service_sid=SERVICE_SID,
        body="Hi",
        status_callback=f"{receiver.base_url}/status",
    )
    spec.message(last_json(client))
    assert msg.status == "accepted"
    assert msg.from_ is None
    assert msg.num_segments == "0"

    calls = receiver.wait_for(lambda r: r.callbacks_for(msg.sid), 3)
    assert statuses(calls) == ["queued", "sent", "delivered"]
    assert all(c.signature_ok(settings.auth_token) for c in calls)
    assert all(c.params["MessagingServiceSid"] == SERVICE_SID for c in calls)
    fetched = client.messages(msg.sid).fetch()
    assert fetched.from_ == calls[0].params["From"] != ""
    assert fetched.num_segments == "1"


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"status": "undelivered", "error_code": 30003}, ["sent", "undelivered"]),
        ({"status": "failed", "error_code": 30008}, ["failed"]),
    ],
)
def test_failure_rule_ends_the_message_with_its_error_code(
    sandbox: SandboxServer,
    receiver: Receiver,
    settings: Settings,
    rule: dict[str, Any],
    expected: list[str],
) -> None:
    unlucky = "+48600000003"
    with sandbox.control() as http:
        http.put("/sandbox/config", json={"failure_rules": {unlucky: rule}}).raise_for_status()
    client = sandbox.client()
    msg = client.messages.create(
        to=unlucky, from_=SENDER, body="x", status_callback=f"{receiver.base_url}/status"
    )

    calls = receiver.wait_for(lambda r: r.callbacks_for(msg.sid), len(expected))
    assert statuses(calls) == expected
    assert calls[-1].params["ErrorCode"] == str(rule["error_code"])
    assert calls[-1].signature_ok(settings.auth_token)
    fetched = client.messages(msg.sid).fetch()
    assert (fetched.status, fetched.error_code) == (expected[-1], rule["error_code"])
    assert fetched.error_message


def test_whatsapp_callbacks_carry_the_channel_prefix(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    msg = sandbox.client().messages.create(
        to="whatsapp:+48600100200",
        from_=f"whatsapp:{SENDER}",
        body="Dzień dobry, to jest dłuższa wiadomość " * 3,
        status_callback=f"{receiver.base_url}/status",
    )
    assert msg.num_segments == "1"
    calls = receiver.wait_for(lambda r: r.callbacks_for(msg.sid), 2)
    assert all(c.params["ChannelPrefix"] == "whatsapp" for c in calls)


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, "1"),
        ("a" * 161, "2"),
        ("a" * 159 + "€", "2"),
        ("Zażółć gęślą jaźń", "1"),
        ("a" * 70 + "ą", "2"),
        ("x" * 152 + "ą", "3"),
        ("Dzień dobry! Przypominamy o wizycie jutro o 10:00. Prosimy o potwierdzenie.", "2"),
    ],
)
def test_num_segments_follows_gsm7_and_ucs2_rules_for_polish_text(
    sandbox: SandboxServer, body: str, segments: str
) -> None:
    msg = sandbox.client().messages.create(to="+48600100200", from_=SENDER, body=body)
    assert msg.num_segments == segments


def test_sender_mps_paces_sends_but_never_refuses_creation(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    with sandbox.control() as http:
        http.put("/sandbox/config", json={"sender_mps": 25}).raise_for_status()
    client = sandbox.client()
    sids = [
        client.messages.create(
            to=f"+4860000010{i}", from_=SENDER, body="x", status_callback=f"{receiver.base_url}/s"
        ).sid
        for i in range(5)
    ]

    every_step = receiver.wait_for(lambda r: [c for s in sids for c in r.callbacks_for(s)], 10)
    assert statuses(every_step).count("delivered") == 5
    sent_order = [
        r.params["MessageSid"] for r in receiver.requests if r.params.get("MessageStatus") == "sent"
    ]
    assert sent_order == sids


def test_unreachable_callback_never_stops_the_dispatcher(
    sandbox: SandboxServer,
    receiver: Receiver,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A closed port on this machine: the guard must let the connection be tried.
    monkeypatch.setattr(settings, "sandbox_allow_private_networks", True)
    client = sandbox.client()
    lost = client.messages.create(
        to="+48600100200",
        from_=SENDER,
        body="x",
        status_callback=f"http://127.0.0.1:{closed_port()}/status",
    )
    seen = client.messages.create(
        to="+48600100200", from_=SENDER, body="y", status_callback=f"{receiver.base_url}/status"
    )

    assert statuses(receiver.wait_for(lambda r: r.callbacks_for(seen.sid), 2)) == [
        "sent",
        "delivered",
    ]
    assert client.messages(lost.sid).fetch().status == "delivered"


def test_messages_survive_an_emulator_restart(receiver: Receiver) -> None:
    first = SandboxServer(webhook_base=receiver.base_url).start()
    try:
        created = first.client().messages.create(to="+48600100200", from_=SENDER, body="keep")
    finally:
        first.stop()

    second = SandboxServer(webhook_base=receiver.base_url).start()
    try:
        fetched = second.client().messages(created.sid).fetch()
    finally:
        second.stop()
    assert (fetched.sid, fetched.body) == (created.sid, "keep")


def test_pending_status_steps_resume_after_a_restart(
    receiver: Receiver, settings: Settings
) -> None:
    receiver.clear()
    first = SandboxServer(webhook_base=receiver.base_url).start()
    try:
        with first.control() as http:
            # Long enough that nothing happens before the restart.
            http.put("/sandbox/config", json={"status_delay_ms": 600_000}).raise_for_status()
        msg = first.client().messages.create(
            to="+48600100200",
            from_=SENDER,
            body="later",
            status_callback=f"{receiver.base_url}/status",
        )
        assert first.client().messages(msg.sid).fetch().status == "queued"
    finally:
        first.stop()
    assert receiver.callbacks_for(msg.sid) == []

    # Knob overrides are process state and die with it; the new one runs on settings (0 ms).
    second = SandboxServer(webhook_base=receiver.base_url).start()
    try:
        calls = receiver.wait_for(lambda r: r.callbacks_for(msg.sid), 2)
        assert statuses(calls) == ["sent", "delivered"]
        assert all(c.signature_ok(settings.auth_token) for c in calls)
        assert second.client().messages(msg.sid).fetch().status == "delivered"
    finally:
        second.stop()
