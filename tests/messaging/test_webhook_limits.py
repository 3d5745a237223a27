"""Signed webhooks with hostile values are stored (bounded), never left to fail on insert.

Each case is a webhook Twilio's signature accepts but whose values once broke the
insert: integer overflow, strings longer than their columns, NUL bytes (PostgreSQL's
text refuses them), odd digits, unknown statuses. Every one must be answered 200 and be
in the database when the answer comes, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from sqlalchemy import select

from relaydesk.contacts.models import Contact
from relaydesk.messaging.models import Message, MessageEvent
from tests.conftest import AUTH_TOKEN, LiveServer
from tests.messaging.test_webhooks import OUR_NUMBER, Post, inbound, new_sid

HUGE = "99999999999999999999999"
pytestmark = pytest.mark.usefixtures("empty_spool")


def spool_is_empty() -> bool:
    """Nothing was set aside on disk: neither waiting for the database nor dead."""
    from relaydesk.core.config import get_settings

    folder = get_settings().data_dir / "spool"
    files = list(folder.glob("*.jsonl")) + list(folder.glob("*.replaying"))
    return not any(f.stat().st_size for f in files)


def post_raw(server: LiveServer, path: str, body: str, **headers: str) -> httpx.Response:
    """POST a hand-built form body (duplicate keys, invalid UTF-8 escapes), signed."""
    from relaydesk.channels.twilio.signature import sign

    url = server.url + path
    params = dict(parse_qsl(body, keep_blank_values=True))
    return httpx.post(
        url,
        content=body.encode("ascii"),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign(url, params, AUTH_TOKEN),
            **headers,
        },
        timeout=30,
    )


def sent_message(api: httpx.Client) -> str:
    """A message we sent, whose status only our callbacks move (emulator frozen)."""
    from relaydesk.channels.sandbox.knobs import KnobsUpdate
    from relaydesk.channels.sandbox.runtime import get_emulator

    get_emulator().control.update(KnobsUpdate(status_delay_ms=600_000))
    answer = api.post("/api/send-message", json={"to": "+48600100310", "body": "Hej"})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["sid"])


def test_status_callback_with_a_huge_error_code_is_stored(
    twilio_post: Post, api: httpx.Client, db: Any
) -> None:
    sid = sent_message(api)
    params = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": HUGE}
    assert twilio_post("/twilio/status", params).status_code == 200
    event = db.scalar(select(MessageEvent).where(MessageEvent.sid == sid))
    assert event is not None, "the callback was not stored"
    assert event.error_code is None
    assert event.payload["ErrorCode"] == HUGE  # the raw value is kept
    message = db.scalar(select(Message).where(Message.sid == sid))
    assert message.status == "undelivered"
    assert message.error_code is None
    assert spool_is_empty()


def test_inbound_with_huge_segments_and_a_nul_in_the_body_is_stored(
    twilio_post: Post, db: Any
) -> None:
    sid = new_sid()
    params = inbound(sid, "przed\x00po", NumSegments="99999999999999999999", Extra="a\x00b")
    assert twilio_post("/twilio/inbound", params).status_code == 200
    message = db.scalar(select(Message).where(Message.sid == sid))
    assert message is not None, "the message was not stored"
    assert 1 <= message.num_segments <= 100
    assert "\x00" not in message.body
    assert message.body.startswith("przed") and message.body.endswith("po")
    assert "\x00" not in message.raw["Extra"]
    assert message.raw["NumSegments"] == "99999999999999999999"
    assert spool_is_empty()


INBOUND_CASES: dict[str, dict[str, str]] = {
    "long profile name": {"ProfileName": "Ż" * 300},
    "long messaging service": {"MessagingServiceSid": "MG" + "a" * 100},
    "long sender number": {"From": "+380" + "1" * 17},
    "long sender text": {"From": "x" * 300},
    "long recipient": {"To": "+" + "4" * 300},
    "nul in the sender": {"From": "+48600\x00100200"},
    "nul in profile and a key": {"ProfileName": "A\x00a", "Od\x00kogo": "x"},
    "negative segments": {"NumSegments": "-5"},
    "superscript digits": {"NumSegments": "²", "NumMedia": "³"},
    "arabic digits": {"NumSegments": "١٢"},
    "5,000-digit segments": {"NumSegments": "9" * 5000},
    "huge media count": {
        "NumMedia": HUGE,
        "MediaUrl0": "https://api.twilio.com/x/Media/ME1",
        "MediaContentType0": "image/" + "j" * 300,
    },
    "nul in a media address": {
        "NumMedia": "1",
        "MediaUrl0": "https://api.twilio.com/x\x00/Media/ME1",
        "MediaContentType0": "image/jpeg\x00",
    },
    "long location label": {"Latitude": "52.2", "Longitude": "21.0", "Label": "L" * 500},
}


@pytest.mark.parametrize("extra", INBOUND_CASES.values(), ids=INBOUND_CASES.keys())
def test_hostile_inbound_is_stored_bounded(
    extra: dict[str, str], twilio_post: Post, db: Any
) -> None:
    sid = new_sid()
    params = inbound(sid, "" if "Label" in extra else "treść", **extra)
    assert twilio_post("/twilio/inbound", params).status_code == 200
    message = db.scalar(select(Message).where(Message.sid == sid))
    assert message is not None, "the message was not stored"
    assert len(message.participant) <= 20
    assert len(message.from_addr) <= 64 and len(message.to_addr) <= 64
    assert 1 <= message.num_segments <= 100
    assert 0 <= message.num_media <= 10
    stored = [message.from_addr, message.body, *message.raw, *message.raw.values()]
    assert not [text for text in stored if "\x00" in text]
    contact = db.scalar(select(Contact).where(Contact.phone == message.participant))
    assert contact is not None
    assert contact.profile_name is None or len(contact.profile_name) <= 200
    assert spool_is_empty()


def test_nul_in_the_message_sid_is_stored_once(twilio_post: Post, db: Any) -> None:
    sid = new_sid() + "\x00x"
    for _ in range(2):
        assert twilio_post("/twilio/inbound", inbound(sid)).status_code == 200
    rows = db.scalars(select(Message.sid).where(Message.sid.startswith(sid[:34]))).all()
    assert len(rows) == 1
    assert "\x00" not in rows[0]


def test_invalid_utf8_escapes_and_duplicate_keys_are_stored(server: LiveServer, db: Any) -> None:
    sid = new_sid()
    body = (
        f"MessageSid={sid}&From=%2B48600100203&To={OUR_NUMBER.replace('+', '%2B')}"
        "&Body=%ED%A0%80lone&Body=second%FF&ProfileName=%C0%80"
    )
    assert post_raw(server, "/twilio/inbound", body).status_code == 200
    message = db.scalar(select(Message).where(Message.sid == sid))
    assert message is not None
    assert message.body.endswith("second\ufffd")
    assert spool_is_empty()


STATUS_CASES: dict[str, dict[str, str]] = {
    "huge error code": {"MessageStatus": "failed", "ErrorCode": HUGE},
    "5,000-digit error code": {"MessageStatus": "failed", "ErrorCode": "9" * 5000},
    "negative error code": {"MessageStatus": "failed", "ErrorCode": "-30003"},
    "superscript error code": {"MessageStatus": "failed", "ErrorCode": "³⁰⁰⁰³"},
    "six-digit error code": {"MessageStatus": "failed", "ErrorCode": "300030"},
    "unknown long status": {"MessageStatus": "x" * 200},
    "nul in the status": {"MessageStatus": "deli\x00vered"},
    "nul in a value": {"MessageStatus": "sent", "ChannelPrefix": "sms\x00"},
}


@pytest.mark.parametrize("extra", STATUS_CASES.values(), ids=STATUS_CASES.keys())
def test_hostile_status_callback_is_kept_as_an_event(
    extra: dict[str, str], twilio_post: Post, db: Any
) -> None:
    sid = new_sid()
    assert twilio_post("/twilio/status", {"MessageSid": sid, **extra}).status_code == 200
    event = db.scalar(select(MessageEvent).where(MessageEvent.sid == sid))
    assert event is not None, "the callback was not stored"
    assert len(event.status) <= 20
    assert event.error_code is None or 0 < event.error_code <= 99999
    assert not [v for v in (event.status, *event.payload.values()) if "\x00" in v]
    assert spool_is_empty()


def test_long_idempotency_token_is_kept_bounded(twilio_post: Post, db: Any) -> None:
    sid = new_sid()
    token = "t" + secrets.token_hex(150)
    answer = twilio_post(
        "/twilio/status",
        {"MessageSid": sid, "MessageStatus": "delivered"},
        **{"I-Twilio-Idempotency-Token": token},
    )
    assert answer.status_code == 200
    event = db.scalar(select(MessageEvent).where(MessageEvent.sid == sid))
    assert event is not None, "the callback was not stored"
    assert event.idempotency_token == token[:128]
    assert spool_is_empty()
