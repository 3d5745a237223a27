"""The simulated customer phone, the run-time config and reset routes."""

from __future__ import annotations

import re
import socket

import httpx
import pytest

from relaydesk.core.config import Settings
from tests.fakes.twilio_callbacks import Captured, Receiver

from .conftest import SandboxServer, SpecValidator

CUSTOMER = "+48600100200"
SID = re.compile(r"^SM[0-9a-f]{32}$")


def inbound(receiver: Receiver) -> list[Captured]:
    return [r for r in receiver.requests if r.path == "/twilio/inbound"]


def test_phone_message_posts_a_signed_twilio_webhook(
    sandbox: SandboxServer, receiver: Receiver, settings: Settings
) -> None:
    body = "Dzień dobry, czy mogę przełożyć wizytę na czwartek po południu? Pozdrawiam, Zofia"
    with sandbox.control() as http:
        answer = http.post("/sandbox/phone/messages", json={"from": CUSTOMER, "body": body})

    assert answer.status_code == 201
    data = answer.json()
    assert SID.match(data["sid"])
    assert (data["from"], data["body"], data["webhook_status"]) == (CUSTOMER, body, 200)
    our_number = data["to"]
    assert our_number == settings.default_from
    [hook] = receiver.wait_for(inbound, 1)
    assert hook.url == f"{receiver.base_url}/twilio/inbound"
    assert hook.signature_ok(settings.auth_token)
    expected = {
        "MessageSid": data["sid"],
        "SmsSid": data["sid"],
        "SmsMessageSid": data["sid"],
        "AccountSid": settings.account_sid,
        "From": CUSTOMER,
        "To": our_number,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "2",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    if settings.twilio_messaging_service_sid:
        expected["MessagingServiceSid"] = settings.twilio_messaging_service_sid
    assert hook.params == expected


def test_whatsapp_message_carries_profile_name_and_wa_id(
    sandbox: SandboxServer, receiver: Receiver, settings: Settings
) -> None:
    payload = {"from": f"whatsapp:{CUSTOMER}", "body": "Cześć", "profile_name": "Ania"}
    with sandbox.control() as http:
        data = http.post("/sandbox/phone/messages", json=payload).json()

    assert data["to"].startswith("whatsapp:+")
    [hook] = receiver.wait_for(inbound, 1)
    assert hook.signature_ok(settings.auth_token)
    assert hook.params["From"] == f"whatsapp:{CUSTOMER}"
    assert (hook.params["ProfileName"], hook.params["WaId"]) == ("Ania", CUSTOMER[1:])
    assert hook.params["NumSegments"] == "1"


def test_form_encoded_phone_message_is_accepted(sandbox: SandboxServer, receiver: Receiver) -> None:
    with sandbox.control() as http:
        answer = http.post(
            "/sandbox/phone/messages", data={"from": CUSTOMER, "to": "+48500500500", "body": "ok"}
        )
    assert answer.status_code == 201
    assert receiver.wait_for(inbound, 1)[0].params["To"] == "+48500500500"


@pytest.mark.parametrize(
    "payload", [{"from": "600100200", "body": "x"}, {"from": CUSTOMER, "body": ""}, {"body": "x"}]
)
def test_invalid_phone_message_is_422(sandbox: SandboxServer, payload: dict[str, str]) -> None:
    with sandbox.control() as http:
        assert http.post("/sandbox/phone/messages", json=payload).status_code == 422


def test_twiml_reply_becomes_an_outbound_reply_message(
    sandbox: SandboxServer, receiver: Receiver, spec: SpecValidator
) -> None:
    receiver.inbound_answer = (
        "<Response><Message>Dzień dobry! Zaraz odpiszemy.</Message></Response>"
    )
    with sandbox.control() as http:
        data = http.post("/sandbox/phone/messages", json={"from": CUSTOMER, "body": "Hej"}).json()
        [reply_sid] = data["replies"]
        listed = http.get("/sandbox/phone/messages", params={"number": CUSTOMER}).json()

    assert [m["sid"] for m in listed["messages"]] == [data["sid"], reply_sid]
    reply = listed["messages"][1]
    spec.message(reply)
    assert reply["direction"] == "outbound-reply"
    assert (reply["from"], reply["to"]) == (data["to"], CUSTOMER)
    assert reply["body"] == "Dzień dobry! Zaraz odpiszemy."


def test_phone_lists_what_it_sent_and_received(
    sandbox: SandboxServer, spec: SpecValidator, settings: Settings
) -> None:
    with sandbox.control() as http:
        http.post("/sandbox/phone/messages", json={"from": CUSTOMER, "body": "Pytanie"})
    sandbox.client().messages.create(to=CUSTOMER, from_=settings.default_from, body="Odpowiedź")
    sandbox.client().messages.create(to="+48999999999", from_=settings.default_from, body="inny")

    with sandbox.control() as http:
        listed = http.get("/sandbox/phone/messages", params={"number": CUSTOMER}).json()

    assert [(m["direction"], m["body"]) for m in listed["messages"]] == [
        ("inbound", "Pytanie"),
        ("outbound-api", "Odpowiedź"),
    ]
    for message in listed["messages"]:
        spec.message(message)


def test_unreachable_webhook_is_reported_not_raised(receiver: Receiver) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = SandboxServer(webhook_base=dead).start()
    try:
        with server.control() as http:
            answer = http.post("/sandbox/phone/messages", json={"from": CUSTOMER, "body": "x"})
    finally:
        server.stop()
    assert answer.status_code == 201
    assert answer.json()["webhook_status"] is None
    assert "ConnectError" in answer.json()["webhook_error"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/sandbox/phone/messages"),
        ("GET", "/sandbox/phone/messages"),
        ("GET", "/sandbox/config"),
        ("PUT", "/sandbox/config"),
        ("POST", "/sandbox/reset"),
    ],
)
def test_sandbox_routes_need_the_account_credentials(
    sandbox: SandboxServer, settings: Settings, method: str, path: str
) -> None:
    url = sandbox.base_url + path
    assert httpx.request(method, url).status_code == 401
    wrong = (settings.account_sid, "wrong-token")
    assert httpx.request(method, url, auth=wrong).status_code == 401


def test_config_overrides_at_run_time_and_reset_restores_settings(
    sandbox: SandboxServer, settings: Settings
) -> None:
    change = {
        "latency_ms": 5,
        "sender_mps": 2.5,
        "failure_rules": {"whatsapp:+48600000003": {"status": "undelivered", "error_code": 30003}},
    }
    with sandbox.control() as http:
        updated = http.put("/sandbox/config", json=change).json()
        assert http.get("/sandbox/config").json() == updated
        assert http.put("/sandbox/config", json={"api_rps": -1}).status_code == 422
        http.post("/sandbox/phone/messages", json={"from": CUSTOMER, "body": "x"})

        assert http.post("/sandbox/reset").status_code == 204
        restored = http.get("/sandbox/config").json()
        listed = http.get("/sandbox/phone/messages", params={"number": CUSTOMER}).json()

    assert updated["latency_ms"] == 5 and updated["sender_mps"] == 2.5
    assert updated["status_delay_ms"] == settings.sandbox_status_delay_ms
    # Rules match a recipient on either channel, so they are keyed by the bare number.
    assert updated["failure_rules"] == {
        "+48600000003": {"status": "undelivered", "error_code": 30003}
    }
    assert restored == {
        "latency_ms": settings.sandbox_latency_ms,
        "sender_mps": settings.sandbox_sender_mps,
        "api_rps": settings.sandbox_api_rps,
        "status_delay_ms": settings.sandbox_status_delay_ms,
        "failure_rules": {},
    }
    assert listed["messages"] == []
