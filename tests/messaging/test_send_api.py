"""POST /api/send-message end to end: real twilio SDK against the sandbox emulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from relaydesk.contacts.models import Contact
from relaydesk.messaging.models import Message
from tests.conftest import wait_for


def set_knobs(**knobs: Any) -> None:
    from relaydesk.channels.sandbox.knobs import KnobsUpdate
    from relaydesk.channels.sandbox.runtime import get_emulator

    get_emulator().control.update(KnobsUpdate(**knobs))


def emulator_messages(to: str) -> list[Any]:
    from relaydesk.channels.sandbox.runtime import get_emulator

    found = get_emulator().store.for_number(to)
    return [m for m in found if m.direction.startswith("outbound")]


def test_send_returns_201_with_the_message_and_twilio_sid(api: httpx.Client, db: Any) -> None:
    set_knobs(status_delay_ms=600_000)  # hold the message at "queued" for this check
    answer = api.post("/api/send-message", json={"to": "600 100 200", "body": "Dzień dobry!"})
    assert answer.status_code == 201, answer.text
    message = answer.json()
    assert message["sid"].startswith("SM")
    assert message["direction"] == "outbound"
    assert message["channel"] == "sms"
    assert message["to"] == "+48600100200"
    assert message["participant"] == "+48600100200"
    assert message["status"] == "queued"
    assert message["encoding"] == "UCS-2"
    assert message["num_segments"] == 1
    assert message["source"] == "api"
    assert message["created_at"].endswith("Z")
    # The emulator (Twilio's stand-in) received exactly this message once.
    remote = emulator_messages("+48600100200")
    assert [m.sid for m in remote] == [message["sid"]]
    assert remote[0].body == "Dzień dobry!"
    assert remote[0].status_callback.endswith("/twilio/status")


@pytest.mark.parametrize(
    ("number", "code", "words"),
    [
        ("+15005550001", 21211, "not a valid phone number"),
        ("+15005550002", 21612, "cannot route"),
        ("+15005550003", 21408, "not enabled"),
        ("+15005550004", 21610, "unsubscribed"),
        ("+15005550009", 21614, "not a mobile"),
    ],
)
def test_permanent_twilio_errors_answer_422_and_keep_the_code(
    api: httpx.Client, db: Any, number: str, code: int, words: str
) -> None:
    answer = api.post("/api/send-message", json={"to": number, "body": "hello"})
    assert answer.status_code == 422
    body = answer.json()
    assert body["code"] == "twilio_error"
    assert body["twilio_code"] == code
    assert words in body["detail"]
    stored = db.scalar(select(Message).where(Message.id == body["message"]["id"]))
    assert stored.status == "failed"
    assert stored.error_code == code
    assert words in stored.error_message
    assert stored.sid is None


def test_21610_marks_the_contact_opted_out(api: httpx.Client, db: Any) -> None:
    assert (
        api.post("/api/send-message", json={"to": "+15005550004", "body": "a"}).status_code == 422
    )
    contact = db.scalar(select(Contact).where(Contact.phone == "+15005550004"))
    assert contact.opted_out_at is not None
    again = api.post("/api/send-message", json={"to": "+15005550004", "body": "b"})
    assert again.status_code == 409
    assert again.json()["code"] == "opted_out"


def test_transient_429_is_retried_until_sent(api: httpx.Client, db: Any) -> None:
    from relaydesk.messaging import delivery

    set_knobs(api_rps=0.001)  # the bucket holds one request, then answers 429
    first = api.post("/api/send-message", json={"to": "+48600100210", "body": "one"})
    second = api.post("/api/send-message", json={"to": "+48600100211", "body": "two"})
    assert first.status_code == 201
    assert second.status_code == 202
    pending = second.json()
    assert pending["status"] == "pending"
    assert pending["error_code"] == 20429
    assert "retrying" in pending["error_message"]
    set_knobs(api_rps=0)
    # Retries are scheduled with backoff; run the due attempt now instead of waiting.
    assert delivery.deliver(pending["id"]).state == "submitted"
    stored = db.scalar(select(Message).where(Message.id == pending["id"]))
    assert stored.sid is not None
    assert stored.attempts == 2
    assert len(emulator_messages("+48600100211")) == 1


def test_interrupted_send_is_reconciled_not_resent(api: httpx.Client, db: Any, server: Any) -> None:
    """A process died after Twilio accepted the message but before the SID was stored."""
    from sqlalchemy import update

    from relaydesk.core.db import session_scope
    from relaydesk.messaging import delivery

    sent = api.post("/api/send-message", json={"to": "+48600100212", "body": "only once"}).json()
    with session_scope() as session:  # roll the row back to "claimed, answer lost"
        session.execute(
            update(Message)
            .where(Message.id == sent["id"])
            .values(sid=None, status="pending", submit_state="in_flight", submit_started_at=None)
        )
    assert delivery.deliver(sent["id"]).state == "submitted"
    stored = db.scalar(select(Message).where(Message.id == sent["id"]))
    assert stored.sid == sent["sid"]
    assert len(emulator_messages("+48600100212")) == 1


def test_a_failed_reconciliation_still_reconciles_on_the_next_attempt(
    api: httpx.Client, db: Any
) -> None:
    """Twilio has the message, the SID was lost, and the check itself cannot reach Twilio.

    (A server killed mid-send and restarted while Twilio, or the emulator, is still down:
    the refused connection is not ambiguous, but the first attempt was.)
    """
    from sqlalchemy import update

    from relaydesk.channels.twilio.gateway import TwilioGateway, make_client
    from relaydesk.core.db import session_scope
    from relaydesk.messaging import delivery

    sent = api.post("/api/send-message", json={"to": "+48600100214", "body": "once"}).json()
    with session_scope() as session:  # claimed, Twilio took it, the answer was lost
        session.execute(
            update(Message)
            .where(Message.id == sent["id"])
            .values(sid=None, status="pending", submit_state="in_flight", submit_started_at=None)
        )
    unreachable = TwilioGateway(make_client("http://127.0.0.1:9", "AC" + "0" * 32, "x", 2))
    outcome = delivery.deliver(sent["id"], gateway=unreachable)
    assert outcome.state == "retrying" and outcome.error is not None
    assert not outcome.error.ambiguous  # a refused connection: nothing was sent now
    stored = db.scalar(select(Message).where(Message.id == sent["id"]))
    assert stored.submit_state == "in_flight"  # ...but the first attempt may have landed
    with session_scope() as session:
        session.execute(
            update(Message).where(Message.id == sent["id"]).values(submit_started_at=None)
        )
    assert delivery.deliver(sent["id"]).state == "submitted"
    db.expire_all()
    assert db.scalar(select(Message.sid).where(Message.id == sent["id"])) == sent["sid"]
    assert len(emulator_messages("+48600100214")) == 1


def test_timeouts_are_ambiguous_and_reconciled(api: httpx.Client, db: Any) -> None:
    from relaydesk.channels.twilio.gateway import TwilioGateway, make_client
    from relaydesk.core.config import get_settings
    from relaydesk.messaging import delivery

    settings = get_settings()
    slow = TwilioGateway(
        make_client(
            settings.twilio_api_base, settings.account_sid, settings.auth_token, timeout=0.3
        )
    )
    set_knobs(latency_ms=1500)  # the emulator creates the message, but answers too late
    with _stored_message("+48600100213", "late") as message_id:
        outcome = delivery.deliver(message_id, gateway=slow)
        assert outcome.state == "retrying"
        assert outcome.error is not None and outcome.error.ambiguous
        set_knobs(latency_ms=0)
        assert delivery.deliver(message_id).state in ("submitted", "skipped")
        wait_for(lambda: db.scalar(select(Message.sid).where(Message.id == message_id)))
    assert len(emulator_messages("+48600100213")) == 1


class _stored_message:
    """Store an outbound message without delivering it (the queue job is delayed)."""

    def __init__(self, to: str, body: str) -> None:
        self.to, self.body = to, body

    def __enter__(self) -> int:
        from relaydesk.core.db import session_scope
        from relaydesk.messaging import service

        with session_scope() as session:
            message = service.send(
                session, service.SendRequest(to=self.to, body=self.body), deliver_inline=True
            )
            return message.id

    def __exit__(self, *exc: object) -> None:
        return None


def test_twilio_unreachable_keeps_the_message_for_retry(api: httpx.Client, db: Any) -> None:
    from relaydesk.channels.twilio.gateway import TwilioGateway, make_client
    from relaydesk.messaging import delivery

    dead = TwilioGateway(make_client("http://127.0.0.1:9", "AC" + "0" * 32, "x", timeout=2))
    with _stored_message("+48600100214", "later") as message_id:
        outcome = delivery.deliver(message_id, gateway=dead)
    assert outcome.state == "retrying"
    stored = db.scalar(select(Message).where(Message.id == message_id))
    assert stored.status == "pending"
    assert stored.submit_state == "not_sent"  # a refused connection never reached Twilio
    assert stored.next_attempt_at is not None


@pytest.mark.parametrize(
    ("payload", "status", "words"),
    [
        ({"to": "12345", "body": "x"}, 422, "wrong number of digits"),
        ({"to": "call me maybe", "body": "x"}, 422, "only digits"),
        ({"to": "+48600100200"}, 422, "empty"),
        ({"to": "+48600100200", "body": "   "}, 422, "empty"),
        ({"to": "+48600100200", "body": "x" * 1601}, 422, "1,601 characters"),
        ({"to": "+48600100200", "body": "x" * 10_000}, 422, "10,000 characters"),
        ({"body": "no number"}, 422, "to"),
        ({"to": "+48600100200", "body": "x", "bogus": 1}, 422, "Unknown field 'bogus'"),
        ({"to": "+48600100200", "content_sid": "nope"}, 422, "HX"),
        ({"to": "+48600100200", "body": "x", "content_variables": {"1": "a"}}, 422, "content_sid"),
        ({"to": "+48600100200", "media_urls": ["file:///etc/passwd"]}, 422, "http"),
        ({"to": "whatsapp:+48600100200", "body": "hi"}, 422, "24-hour window"),
    ],
)
def test_bad_input_gets_a_clear_error_and_sends_nothing(
    api: httpx.Client, db: Any, payload: dict[str, Any], status: int, words: str
) -> None:
    answer = api.post("/api/send-message", json=payload)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["detail"]
    assert db.scalar(select(func.count(Message.id))) == 0


def test_malformed_json_and_huge_bodies(api: httpx.Client) -> None:
    bad = api.post(
        "/api/send-message", content=b'{"to": "600', headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 422
    assert bad.json()["detail"] == "The request body is not valid JSON"
    empty = api.post("/api/send-message", content=b"", headers={"Content-Type": "application/json"})
    assert empty.status_code == 422
    not_object = api.post("/api/send-message", json=["to"])
    assert not_object.status_code == 422
    huge = api.post("/api/send-message", json={"to": "+48600100200", "body": "x" * 2_000_000})
    assert huge.status_code == 413
    assert "larger than" in huge.json()["detail"]


def test_whatsapp_inside_the_window_and_templates_outside(
    api: httpx.Client, twilio_post: Callable[..., httpx.Response], db: Any
) -> None:
    template = {
        "to": "whatsapp:+48600100220",
        "content_sid": "HX4b4adba77b8189f09cc4069f16415ea0",  # a template the emulator has
        "content_variables": {"1": "Ania"},
    }
    answer = api.post("/api/send-message", json=template)
    assert answer.status_code == 201, answer.text
    assert answer.json()["channel"] == "whatsapp"
    assert answer.json()["to"] == "whatsapp:+48600100220"
    twilio_post(
        "/twilio/inbound",
        {
            "MessageSid": "SM" + "c" * 32,
            "From": "whatsapp:+48600100220",
            "To": "whatsapp:+15005550006",
            "Body": "Hej",
            "NumMedia": "0",
        },
    )
    free_text = api.post("/api/send-message", json={"to": "whatsapp:+48600100220", "body": "Hej!"})
    assert free_text.status_code == 201, free_text.text
    assert free_text.json()["from"] == "whatsapp:+15005550006"


def test_a_template_is_stored_with_the_text_the_customer_received(
    api: httpx.Client, db: Any
) -> None:
    from relaydesk.messaging.delivery import get_gateway

    sent = api.post(
        "/api/send-message",
        json={
            "to": "whatsapp:+48600100221",
            "content_sid": "HX4b4adba77b8189f09cc4069f16415ea0",  # a template the emulator has
            "content_variables": {"1": "Ania"},
        },
    )
    assert sent.status_code == 201, sent.text
    mid = sent.json()["id"]
    sid = wait_for(
        lambda: db.scalar(select(Message.sid).where(Message.id == mid)), what="the template sent"
    )
    at_twilio = get_gateway().fetch_message(sid).body  # the emulator's own record
    assert "Ania" in at_twilio and "{{" not in at_twilio
    assert api.get(f"/api/messages/{mid}").json()["body"] == at_twilio
    thread = api.get("/api/conversations/+48600100221").json()
    assert [m["body"] for m in thread["items"]] == [at_twilio]


def test_api_needs_a_valid_token_and_role(server: Any, make_token: Callable[[str], str]) -> None:
    url = server.url
    assert httpx.get(f"{url}/api/messages").status_code == 401
    wrong = httpx.get(f"{url}/api/messages", headers={"Authorization": "Bearer rd_nope"})
    assert wrong.status_code == 401
    assert "unknown" in wrong.json()["detail"]
    viewer = {"Authorization": f"Bearer {make_token('viewer')}"}
    assert httpx.get(f"{url}/api/messages", headers=viewer).status_code == 200
    refused = httpx.post(
        f"{url}/api/send-message", headers=viewer, json={"to": "+48600100200", "body": "x"}
    )
    assert refused.status_code == 403
    assert httpx.get(f"{url}/health").status_code == 200


def test_token_use_is_recorded(api: httpx.Client, db: Any) -> None:
    from relaydesk.auth.models import ApiToken

    assert api.get("/api/messages").status_code == 200
    used = db.scalars(select(ApiToken.last_used_at)).all()
    assert used and all(at is not None for at in used)


def test_a_template_is_rendered_as_twilio_lists_it(api: httpx.Client) -> None:
    """What crash recovery compares with Twilio's list (messaging.delivery._listed_body)."""
    from relaydesk.channels.twilio.gateway import GatewayError
    from relaydesk.messaging.delivery import get_gateway

    gateway = get_gateway()
    template = gateway.fetch_template("HX4b4adba77b8189f09cc4069f16415ea0")
    # A value given wins; a missing one takes the template's own, as Twilio does.
    assert template.rendered({"1": "Ania"}) == template.rendered({"1": "Ania", "9": "x"})
    assert "Ania" in template.rendered({"1": "Ania"})
    assert "{{" not in template.rendered({})
    with pytest.raises(GatewayError) as missing:
        gateway.fetch_template("HX" + "0" * 32)
    assert missing.value.status == 404
