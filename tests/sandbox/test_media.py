"""Customers' files: multipart phone messages, Twilio-style media URLs and the signed CDN."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import select

from relaydesk.channels.sandbox.media import cdn_query
from relaydesk.core.config import Settings
from tests.conftest import wait_for
from tests.fakes.twilio_callbacks import Captured, Receiver

from .conftest import SandboxServer, SpecValidator

CUSTOMER = "+48600100200"
MEDIA_URL = re.compile(
    r"^(?P<base>http://127\.0\.0\.1:\d+.*)/2010-04-01/Accounts/(?P<account>AC\w{32})"
    r"/Messages/(?P<message>MM[0-9a-f]{32})/Media/(?P<media>ME[0-9a-f]{32})$"
)
# A few bytes that are not text, so an encoding slip would show.
PHOTO = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4
VOICE = b"OggS\x00\x02" + bytes(range(255, -1, -1)) * 8


def inbound(receiver: Receiver) -> list[Captured]:
    return [r for r in receiver.requests if r.path == "/twilio/inbound"]


def send_files(
    sandbox: SandboxServer, files: list[tuple[str, tuple[str, bytes, str]]], **fields: str
) -> httpx.Response:
    """POST a multipart phone message (fields plus files in `media`)."""
    with sandbox.control() as http:
        return http.post("/sandbox/phone/messages", data=fields, files=files)


def photo_hook(sandbox: SandboxServer, receiver: Receiver) -> Captured:
    answer = send_files(
        sandbox, [("media", ("photo.jpg", PHOTO, "image/jpeg"))], **{"from": CUSTOMER}
    )
    assert answer.status_code == 201, answer.text
    [hook] = receiver.wait_for(inbound, 1)
    return hook


def test_multipart_message_posts_media_urls_and_types_in_a_signed_webhook(
    sandbox: SandboxServer, receiver: Receiver, settings: Settings
) -> None:
    files = [
        ("media", ("photo.jpg", PHOTO, "image/jpeg")),
        # Browsers often send unknown types as octet-stream: the name decides then.
        ("media", ("note.ogg", VOICE, "application/octet-stream")),
    ]
    answer = send_files(sandbox, files, **{"from": CUSTOMER, "body": "Zdjęcie i nagranie"})

    assert answer.status_code == 201, answer.text
    data = answer.json()
    assert data["sid"].startswith("MM")
    assert [m["content_type"] for m in data["media"]] == ["image/jpeg", "audio/ogg"]
    [hook] = receiver.wait_for(inbound, 1)
    assert hook.signature_ok(settings.auth_token)
    params = hook.params
    assert (params["NumMedia"], params["Body"], params["MessageSid"]) == (
        "2",
        "Zdjęcie i nagranie",
        data["sid"],
    )
    assert (params["MediaContentType0"], params["MediaContentType1"]) == (
        "image/jpeg",
        "audio/ogg",
    )
    for n, media in enumerate(data["media"]):
        found = MEDIA_URL.match(params[f"MediaUrl{n}"])
        assert found, params[f"MediaUrl{n}"]
        assert found["base"] == sandbox.base_url  # a standalone emulator: Twilio's paths at /
        assert (found["account"], found["message"], found["media"]) == (
            settings.account_sid,
            data["sid"],
            media["sid"],
        )


def test_media_url_without_or_with_wrong_credentials_is_401_20003(
    sandbox: SandboxServer, receiver: Receiver, settings: Settings
) -> None:
    url = photo_hook(sandbox, receiver).params["MediaUrl0"]

    for auth in (None, (settings.account_sid, "wrong-token")):
        answer = httpx.get(url, auth=auth)
        assert answer.status_code == 401
        assert answer.json()["code"] == 20003
        assert answer.json()["status"] == 401
        assert "location" not in answer.headers


def test_media_url_redirects_307_to_a_cdn_address_that_serves_the_exact_bytes(
    sandbox: SandboxServer, receiver: Receiver, settings: Settings
) -> None:
    url = photo_hook(sandbox, receiver).params["MediaUrl0"]
    auth = (settings.account_sid, settings.auth_token)

    redirect = httpx.get(url, auth=auth)
    assert redirect.status_code == 307
    target = redirect.headers["location"]
    assert target.startswith(sandbox.base_url + "/cdn/")
    assert {"Expires", "Signature"} <= dict(parse_qsl(urlsplit(target).query)).keys()

    file = httpx.get(target)  # no credentials needed
    assert file.status_code == 200
    assert file.content == PHOTO
    assert file.headers["content-type"] == "image/jpeg"
    assert file.headers["content-length"] == str(len(PHOTO))
    # Credentials carried over to the CDN are refused, as S3 refuses two auth mechanisms.
    assert httpx.get(target, auth=auth).status_code == 400


def test_cdn_address_with_a_bad_or_expired_signature_is_403(
    sandbox: SandboxServer, receiver: Receiver, settings: Settings
) -> None:
    url = photo_hook(sandbox, receiver).params["MediaUrl0"]
    media_sid = url.rsplit("/", 1)[1]
    target = httpx.get(url, auth=(settings.account_sid, settings.auth_token)).headers["location"]
    address, query = target.split("?", 1)
    params = dict(parse_qsl(query))

    tampered = {**params, "Signature": "0" * len(params["Signature"])}
    longer = {**params, "Expires": str(int(params["Expires"]) + 3600)}
    expired = cdn_query(media_sid, settings.auth_token, now=time.time() - 5 * 3600)
    other_file = address.replace(media_sid, "ME" + "0" * 32)
    for bad in (
        f"{address}?{urlencode(tampered)}",
        f"{address}?{urlencode(longer)}",
        f"{address}?{expired}",
        address,
        f"{other_file}?{query}",
    ):
        assert httpx.get(bad).status_code == 403, bad


def test_media_resource_json_describes_the_file(
    sandbox: SandboxServer, receiver: Receiver, settings: Settings, spec: SpecValidator
) -> None:
    hook = photo_hook(sandbox, receiver)
    url = hook.params["MediaUrl0"]
    answer = httpx.get(url + ".json", auth=(settings.account_sid, settings.auth_token))

    assert answer.status_code == 200
    body = answer.json()
    assert body["sid"] == url.rsplit("/", 1)[1]
    assert (body["parent_sid"], body["content_type"]) == (hook.params["MessageSid"], "image/jpeg")
    missing = url.rsplit("/", 1)[0] + "/ME" + "0" * 32
    assert httpx.get(missing, auth=(settings.account_sid, settings.auth_token)).status_code == 404


def test_whatsapp_voice_note_arrives_as_one_audio_ogg_media(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    answer = send_files(
        sandbox,
        [("media", ("PTT-20240501-WA0001.opus", VOICE, ""))],
        **{"from": f"whatsapp:{CUSTOMER}", "profile_name": "Ania"},
    )

    assert answer.status_code == 201, answer.text
    [hook] = receiver.wait_for(inbound, 1)
    params = hook.params
    assert (params["NumMedia"], params["MediaContentType0"], params["Body"]) == (
        "1",
        "audio/ogg",
        "",
    )
    assert params["From"] == f"whatsapp:{CUSTOMER}"
    assert MEDIA_URL.match(params["MediaUrl0"])


def test_attachment_limits_are_refused_with_a_clear_error(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    two = [("media", (f"p{n}.jpg", PHOTO, "image/jpeg")) for n in range(2)]
    whatsapp = send_files(sandbox, two, **{"from": f"whatsapp:{CUSTOMER}"})
    assert whatsapp.status_code == 422
    assert "one file" in whatsapp.text

    eleven = [("media", (f"p{n}.jpg", PHOTO, "image/jpeg")) for n in range(11)]
    assert send_files(sandbox, eleven, **{"from": CUSTOMER}).status_code == 422

    huge = [("media", ("big.mp4", b"\0" * (16 * 1024 * 1024 + 1), "video/mp4"))]
    too_large = send_files(sandbox, huge, **{"from": CUSTOMER})
    assert too_large.status_code == 413
    assert "16 MB" in too_large.text

    nothing = send_files(sandbox, [("media", ("", b"", "application/octet-stream"))], body="")
    assert nothing.status_code == 422
    assert inbound(receiver) == []


@pytest.mark.parametrize("as_json", [True, False])
def test_location_message_passes_latitude_longitude_address_and_label(
    sandbox: SandboxServer, receiver: Receiver, as_json: bool
) -> None:
    payload = {
        "from": f"whatsapp:{CUSTOMER}",
        "latitude": "52.2296756",
        "longitude": "21.0122287",
        "address": "Plac Defilad 1, Warszawa",
        "label": "Pałac Kultury",
    }
    with sandbox.control() as http:
        sent = http.post(
            "/sandbox/phone/messages", **({"json": payload} if as_json else {"data": payload})
        )

    assert sent.status_code == 201, sent.text
    [hook] = receiver.wait_for(inbound, 1)
    assert {k: hook.params[k] for k in ("Latitude", "Longitude", "Address", "Label")} == {
        "Latitude": "52.2296756",
        "Longitude": "21.0122287",
        "Address": "Plac Defilad 1, Warszawa",
        "Label": "Pałac Kultury",
    }
    assert (hook.params["NumMedia"], hook.params["Body"]) == ("0", "")


def test_button_reply_passes_text_payload_and_type(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    payload = {
        "from": f"whatsapp:{CUSTOMER}",
        "button_text": "Courier",
        "button_payload": "delivery_courier",
    }
    with sandbox.control() as http:
        assert http.post("/sandbox/phone/messages", json=payload).status_code == 201

    [hook] = receiver.wait_for(inbound, 1)
    assert {k: hook.params[k] for k in ("ButtonText", "ButtonPayload", "ButtonType", "Body")} == {
        "ButtonText": "Courier",
        "ButtonPayload": "delivery_courier",
        "ButtonType": "REPLY",
        "Body": "Courier",
    }


@pytest.mark.parametrize(
    "payload",
    [
        {"from": CUSTOMER, "latitude": "52.1"},
        {"from": CUSTOMER, "latitude": "95", "longitude": "21"},
        {"from": CUSTOMER, "label": "Home"},
        {"from": CUSTOMER, "button_payload": "x"},
    ],
)
def test_incomplete_location_or_button_is_422(
    sandbox: SandboxServer, payload: dict[str, str]
) -> None:
    with sandbox.control() as http:
        assert http.post("/sandbox/phone/messages", json=payload).status_code == 422


def test_reset_forgets_the_files(
    sandbox: SandboxServer, receiver: Receiver, settings: Settings
) -> None:
    url = photo_hook(sandbox, receiver).params["MediaUrl0"]
    with sandbox.control() as http:
        assert http.post("/sandbox/reset").status_code == 204
    assert httpx.get(url, auth=(settings.account_sid, settings.auth_token)).status_code == 404


def test_relaydesk_stores_the_media_params_of_a_phone_message(
    server: Any, make_token: Callable[[str], str], db: Any
) -> None:
    from relaydesk.messaging.models import Message

    answer = httpx.post(
        server.url + "/sandbox/phone/messages",
        data={"from": "+48600100900", "body": "Paragon"},
        files=[("media", ("receipt.png", b"\x89PNG\r\n\x1a\n" + bytes(64), "image/png"))],
        headers={"Authorization": f"Bearer {make_token('operator')}"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["webhook_status"] == 200
    sid = answer.json()["sid"]

    stored = wait_for(
        lambda: db.scalar(select(Message).where(Message.sid == sid)), what="the inbound message"
    )
    assert stored.body == "Paragon"
    assert stored.raw["NumMedia"] == "1"
    assert stored.raw["MediaContentType0"] == "image/png"
    media_url = stored.raw["MediaUrl0"]
    settings = _app_settings()
    assert media_url.startswith(settings.twilio_api_base + "/2010-04-01/Accounts/")
    redirect = httpx.get(media_url, auth=(settings.account_sid, settings.auth_token))
    assert redirect.status_code == 307
    file = httpx.get(redirect.headers["location"])
    assert file.content.startswith(b"\x89PNG")


def _app_settings() -> Settings:
    from relaydesk.core.config import get_settings

    return get_settings()
