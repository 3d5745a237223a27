"""Twilio webhooks against the running server: signatures, idempotency, ordering."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import func, select

from relaydesk.contacts.models import Contact
from relaydesk.messaging.models import Conversation, Message, MessageEvent
from tests.conftest import wait_for

OUR_NUMBER = "+15005550006"
Post = Callable[..., httpx.Response]


def new_sid(prefix: str = "SM") -> str:
    return prefix + secrets.token_hex(16)


def inbound(
    sid: str, body: str = "Dzień dobry", sender: str = "+48600100200", **extra: str
) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": "AC" + "1" * 32,
        "From": sender,
        "To": OUR_NUMBER,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
        **extra,
    }


def count(db: Any, model: Any, *where: Any) -> int:
    db.expire_all()
    return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_signed_inbound_is_stored_once_and_answered_with_empty_twiml(
    twilio_post: Post, db: Any
) -> None:
    sid = new_sid()
    answer = twilio_post("/twilio/inbound", inbound(sid, FromCity="WARSZAWA", BrandNewParam="x"))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/xml")
    assert answer.text.endswith("<Response/>")
    message = db.scalar(select(Message).where(Message.sid == sid))
    assert message.direction == "inbound"
    assert message.participant == "+48600100200"
    assert message.body == "Dzień dobry"
    assert message.status == "received"
    # Every parameter is kept, including ones Twilio adds without notice.
    assert message.raw["BrandNewParam"] == "x"
    assert message.raw["FromCity"] == "WARSZAWA"


def test_duplicate_delivery_changes_nothing(twilio_post: Post, db: Any, api: httpx.Client) -> None:
    sid = new_sid()
    for _ in range(3):
        assert twilio_post("/twilio/inbound", inbound(sid, "raz")).status_code == 200
    assert count(db, Message, Message.sid == sid) == 1
    conv = db.scalar(select(Conversation).where(Conversation.participant == "+48600100200"))
    assert conv.message_count == 1
    assert conv.unread_count == 1
    assert api.get("/api/messages").json()["counts"] == {"total": 1, "inbound": 1, "outbound": 0}


def test_concurrent_duplicates_are_stored_once(twilio_post: Post, db: Any) -> None:
    import concurrent.futures

    sid = new_sid()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: twilio_post("/twilio/inbound", inbound(sid)), range(16)))
    assert {a.status_code for a in answers} == {200}
    assert count(db, Message, Message.sid == sid) == 1


def test_wrong_or_missing_signature_is_403_and_stores_nothing(twilio_post: Post, db: Any) -> None:
    sid = new_sid()
    assert (
        twilio_post("/twilio/inbound", inbound(sid), signature="bm90IGEgc2lnbmF0dXJl").status_code
        == 403
    )
    assert twilio_post("/twilio/inbound", inbound(sid), signature="").status_code == 403
    assert count(db, Message, Message.sid == sid) == 0
    assert (
        twilio_post(
            "/twilio/status", {"MessageSid": sid, "MessageStatus": "delivered"}, signature="bad"
        ).status_code
        == 403
    )
    assert count(db, MessageEvent, MessageEvent.sid == sid) == 0


def test_signature_over_tampered_params_is_rejected(server: Any, db: Any) -> None:
    from relaydesk.channels.twilio.signature import sign
    from tests.conftest import AUTH_TOKEN

    sid = new_sid()
    params = inbound(sid, "original")
    signature = sign(server.url + "/twilio/inbound", params, AUTH_TOKEN)
    forged = {**params, "Body": "forged"}
    answer = httpx.post(
        server.url + "/twilio/inbound", data=forged, headers={"X-Twilio-Signature": signature}
    )
    assert answer.status_code == 403
    assert count(db, Message, Message.sid == sid) == 0


def test_media_only_inbound_with_empty_body(twilio_post: Post, db: Any) -> None:
    sid = new_sid("MM")
    params = inbound(
        sid,
        "",
        NumMedia="1",
        MediaUrl0=f"https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/{sid}/Media/ME1",
        MediaContentType0="image/jpeg",
    )
    assert twilio_post("/twilio/inbound", params).status_code == 200
    message = db.scalar(select(Message).where(Message.sid == sid))
    assert message.body == ""
    assert message.channel == "mms"
    assert message.media[0]["content_type"] == "image/jpeg"
    conv = db.get(Conversation, message.conversation_id)
    assert conv.last_body == "[1 attachment(s)]"


def test_whatsapp_address_and_profile_name(twilio_post: Post, db: Any, api: httpx.Client) -> None:
    sid = new_sid()
    params = inbound(
        sid, "Cześć", sender="whatsapp:+48600100201", ProfileName="Ania", WaId="48600100201"
    )
    params["To"] = f"whatsapp:{OUR_NUMBER}"
    assert twilio_post("/twilio/inbound", params).status_code == 200
    message = db.scalar(select(Message).where(Message.sid == sid))
    assert message.channel == "whatsapp"
    assert message.participant == "+48600100201"
    assert message.from_addr == "whatsapp:+48600100201"
    contact = db.scalar(select(Contact).where(Contact.phone == "+48600100201"))
    assert contact.channel == "whatsapp"
    assert contact.profile_name == "Ania"
    items = api.get("/api/conversations").json()["items"]
    assert items[0]["channel"] == "whatsapp"
    assert items[0]["profile_name"] == "Ania"


def test_stop_opts_out_and_start_opts_back_in(
    twilio_post: Post, db: Any, api: httpx.Client
) -> None:
    number = "+48600100202"
    assert (
        twilio_post("/twilio/inbound", inbound(new_sid(), " stop ", sender=number)).status_code
        == 200
    )
    contact = db.scalar(select(Contact).where(Contact.phone == number))
    assert contact.opted_out_at is not None
    refused = api.post("/api/send-message", json={"to": number, "body": "Promocja!"})
    assert refused.status_code == 409
    assert "START" in refused.json()["detail"]
    assert (
        twilio_post("/twilio/inbound", inbound(new_sid(), "START", sender=number)).status_code
        == 200
    )
    db.expire_all()
    assert db.scalar(select(Contact).where(Contact.phone == number)).opted_out_at is None


def test_bad_webhooks_get_clear_4xx(twilio_post: Post, server: Any) -> None:
    assert twilio_post("/twilio/inbound", {"Body": "no sid"}).status_code == 400
    huge = inbound(new_sid(), "x" * 70_000)
    answer = twilio_post("/twilio/inbound", huge)
    assert answer.status_code == 413
    assert twilio_post("/twilio/status", {"MessageSid": "SMx"}).status_code == 400


def _send(api: httpx.Client, to: str = "+48600100300", body: str = "Hej") -> dict[str, Any]:
    answer = api.post("/api/send-message", json={"to": to, "body": body})
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_status_callbacks_out_of_order_and_repeated(
    twilio_post: Post, api: httpx.Client, db: Any, server: Any
) -> None:
    from relaydesk.channels.sandbox.knobs import KnobsUpdate
    from relaydesk.channels.sandbox.runtime import get_emulator

    # Freeze the emulator's own progression so only our callbacks move the message.
    get_emulator().control.update(KnobsUpdate(status_delay_ms=600_000))
    sent = _send(api)
    sid = sent["sid"]
    for status in ["delivered", "sent", "queued", "delivered", "sent"]:
        answer = twilio_post("/twilio/status", {"MessageSid": sid, "MessageStatus": status})
        assert answer.status_code == 200
    message = db.scalar(select(Message).where(Message.sid == sid))
    assert message.status == "delivered"
    assert count(db, MessageEvent, MessageEvent.sid == sid) == 5
    applied = db.scalars(
        select(MessageEvent.status).where(MessageEvent.sid == sid, MessageEvent.applied.is_(True))
    ).all()
    assert applied == ["delivered"]
    twilio_post("/twilio/status", {"MessageSid": sid, "MessageStatus": "read", "EventType": "READ"})
    db.expire_all()
    assert db.scalar(select(Message.status).where(Message.sid == sid)) == "read"


def test_failed_status_keeps_error_code_and_meaning(
    twilio_post: Post, api: httpx.Client, db: Any
) -> None:
    from relaydesk.channels.sandbox.knobs import KnobsUpdate
    from relaydesk.channels.sandbox.runtime import get_emulator

    get_emulator().control.update(KnobsUpdate(status_delay_ms=600_000))
    sid = _send(api)["sid"]
    twilio_post(
        "/twilio/status", {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    )
    message = db.scalar(select(Message).where(Message.sid == sid))
    assert message.status == "undelivered"
    assert message.error_code == 30003
    assert "unreachable" in message.error_message


def test_21610_callback_marks_contact_opted_out(
    twilio_post: Post, api: httpx.Client, db: Any
) -> None:
    from relaydesk.channels.sandbox.knobs import KnobsUpdate
    from relaydesk.channels.sandbox.runtime import get_emulator

    get_emulator().control.update(KnobsUpdate(status_delay_ms=600_000))
    sid = _send(api, to="+48600100301")["sid"]
    twilio_post(
        "/twilio/status", {"MessageSid": sid, "MessageStatus": "failed", "ErrorCode": "21610"}
    )
    contact = db.scalar(select(Contact).where(Contact.phone == "+48600100301"))
    assert contact.opted_out_at is not None
    assert (
        api.post("/api/send-message", json={"to": "+48600100301", "body": "x"}).status_code == 409
    )


def test_callback_for_unknown_sid_is_kept_as_event(twilio_post: Post, db: Any) -> None:
    sid = new_sid()
    assert (
        twilio_post("/twilio/status", {"MessageSid": sid, "MessageStatus": "delivered"}).status_code
        == 200
    )
    event = db.scalar(select(MessageEvent).where(MessageEvent.sid == sid))
    assert event.message_id is None
    assert event.payload["MessageStatus"] == "delivered"


def test_emulator_callbacks_drive_a_sent_message_to_delivered(api: httpx.Client, db: Any) -> None:
    sid = _send(api)["sid"]

    def delivered() -> bool:
        db.expire_all()
        return db.scalar(select(Message.status).where(Message.sid == sid)) == "delivered"

    wait_for(delivered, what="delivered status")
    statuses = db.scalars(select(MessageEvent.status).where(MessageEvent.sid == sid)).all()
    assert "delivered" in statuses


def test_public_base_url_is_a_valid_signing_url(server: Any, db: Any) -> None:
    """Behind a proxy Twilio signs the public URL, not the one the app sees."""
    from relaydesk.channels.twilio.signature import sign
    from relaydesk.core.config import get_settings
    from tests.conftest import AUTH_TOKEN

    settings = get_settings()
    settings.public_base_url = "https://relay.example.com"
    try:
        sid = new_sid()
        params = inbound(sid)
        signature = sign("https://relay.example.com/twilio/inbound", params, AUTH_TOKEN)
        answer = httpx.post(
            server.url + "/twilio/inbound", data=params, headers={"X-Twilio-Signature": signature}
        )
        assert answer.status_code == 200
        assert count(db, Message, Message.sid == sid) == 1
    finally:
        settings.public_base_url = None


def test_disabled_validation_accepts_unsigned_and_health_warns(server: Any, db: Any) -> None:
    from relaydesk.core.config import get_settings

    settings = get_settings()
    settings.twilio_validate_signature = False
    try:
        sid = new_sid()
        answer = httpx.post(server.url + "/twilio/inbound", data=inbound(sid))
        assert answer.status_code == 200
        assert count(db, Message, Message.sid == sid) == 1
        health = httpx.get(server.url + "/health").json()
        assert health["signature_validation"] is False
        assert any("NOT checked" in w for w in health["warnings"])
    finally:
        settings.twilio_validate_signature = True
        # Assigning marked the field as given by the environment; it was not.
        settings.model_fields_set.discard("twilio_validate_signature")
    assert httpx.post(server.url + "/twilio/inbound", data=inbound(new_sid())).status_code == 403


def test_sandbox_phone_accepts_operator_tokens_only(
    server: Any, make_token: Callable[[str], str], db: Any
) -> None:
    url = server.url + "/sandbox/phone/messages"
    payload = {"from": "+48600100700", "body": "Dzień dobry"}
    assert httpx.post(url, json=payload).status_code == 401
    viewer = {"Authorization": f"Bearer {make_token('viewer')}"}
    assert httpx.post(url, json=payload, headers=viewer).status_code == 401
    operator = {"Authorization": f"Bearer {make_token('operator')}"}
    answer = httpx.post(url, json=payload, headers=operator)
    assert answer.status_code == 201, answer.text
    sid = answer.json()["sid"]
    assert answer.json()["webhook_status"] == 200
    stored = db.scalar(select(Message).where(Message.sid == sid))
    assert stored.body == "Dzień dobry"
    assert stored.raw["AccountSid"].startswith("AC")


def test_chunked_oversize_webhook_is_refused_before_signature_check(server: Any) -> None:
    """A body of unknown length is read only up to the limit (no unauthenticated memory use)."""

    def endless() -> Any:
        for _ in range(2_000):  # 2,000 × 1 KiB, sent chunked (no Content-Length)
            yield b"Body=" + b"x" * 1019

    answer = httpx.post(
        server.url + "/twilio/inbound",
        content=endless(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 413
