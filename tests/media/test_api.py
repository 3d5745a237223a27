"""Uploads, outbound files, the WhatsApp window and templates through the REST API."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from relaydesk.core.config import get_settings
from relaydesk.core.db import utcnow
from relaydesk.media.models import MediaLink
from tests.conftest import wait_for

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f80f0000010101001be5d7c60000000049454e44ae426082"
)
APPOINTMENT = "HX4b4adba77b8189f09cc4069f16415ea0"  # a template the emulator serves


def upload(api: httpx.Client, name: str, data: bytes, content_type: str) -> httpx.Response:
    return api.post("/api/media", files={"file": (name, data, content_type)})


def test_an_upload_is_published_and_sent_as_mms(api: httpx.Client, db: Any) -> None:
    made = upload(api, "dot.png", PNG, "image/png")
    assert made.status_code == 201, made.text
    link = made.json()
    assert link["content_type"] == "image/png" and link["size"] == len(PNG)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/m/[A-Za-z0-9_-]{40,}", link["url"])
    assert httpx.get(link["url"]).content == PNG  # Twilio fetches it without credentials

    sent = api.post("/api/send-message", json={"to": "+48600400001", "media_urls": [link["url"]]})
    assert sent.status_code == 201, sent.text
    message = sent.json()
    assert message["channel"] == "mms" and message["status"] in ("queued", "sent", "delivered")
    [item] = message["media"]
    assert item["state"] == "stored" and item["url"].startswith("/media/")
    assert api.get(item["url"]).content == PNG

    # The emulator (Twilio) was handed the public address.
    emulated = api.get(
        f"/sandbox/twilio/2010-04-01/Accounts/{get_settings().account_sid}/Messages.json",
        params={"To": "+48600400001"},
        auth=(get_settings().account_sid, get_settings().auth_token),
    ).json()["messages"]
    assert emulated and emulated[0]["num_media"] == "1"


@pytest.mark.parametrize(
    ("name", "data", "content_type", "expected"),
    [
        ("fake.png", b"<script>alert(1)</script>", "image/png", "not a image/png"),
        ("tool.exe", b"MZ\x90\x00" + b"\x00" * 64, "application/x-msdownload", "not accepted"),
        ("empty.pdf", b"", "application/pdf", "empty"),
    ],
)
def test_uploads_that_cannot_be_sent_are_refused(
    api: httpx.Client, name: str, data: bytes, content_type: str, expected: str
) -> None:
    answer = upload(api, name, data, content_type)
    assert answer.status_code == 422
    assert expected in answer.json()["detail"]


def test_an_upload_over_the_limit_is_413_and_needs_a_sign_in(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "media_max_bytes", 1024)
    answer = upload(api, "big.pdf", b"%PDF-1.4" + b"0" * 2000, "application/pdf")
    assert answer.status_code == 413 and "limit" in answer.json()["detail"]
    anonymous = httpx.post(f"{api.base_url}/api/media", files={"file": ("a.png", PNG, "image/png")})
    assert anonymous.status_code == 401


def test_files_are_checked_against_the_channel_before_sending(
    api: httpx.Client, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pdf = b"%PDF-1.4\n" + b"x" * (600 * 1024)
    link = upload(api, "offer.pdf", pdf, "application/pdf").json()
    too_big = api.post(
        "/api/send-message", json={"to": "+48600400002", "media_urls": [link["url"]]}
    )
    assert too_big.status_code == 422
    assert "500 KB limit for application/pdf on mms" in too_big.json()["detail"]

    db.execute(update(MediaLink).values(expires_at=utcnow() - timedelta(minutes=1)))
    db.commit()
    expired = api.post(
        "/api/send-message", json={"to": "+48600400002", "body": "x", "media_urls": [link["url"]]}
    )
    assert expired.status_code == 422 and "expired" in expired.json()["detail"]
    assert httpx.get(link["url"]).status_code == 410

    internal = api.post(
        "/api/send-message",
        json={"to": "+48600400002", "media_urls": ["http://127.0.0.1:9/x.png"]},
    )
    assert internal.status_code == 422 and "internal address" in internal.json()["detail"]
    assert api.get("/api/messages", params={"participant": "+48600400002"}).json()["items"] == []


def test_the_whatsapp_window_is_explained_and_templates_work_outside_it(
    api: httpx.Client, twilio_post: Callable[..., httpx.Response]
) -> None:
    to = "whatsapp:+48600400003"
    window = api.get("/api/whatsapp/window", params={"to": to}).json()
    assert window["open"] is False and window["last_inbound_at"] is None
    refused = api.post("/api/send-message", json={"to": to, "body": "Hello!"})
    assert refused.status_code == 422
    assert refused.json()["code"] == "whatsapp_window_closed"
    assert "24-hour window" in refused.json()["detail"]

    templates = api.get("/api/whatsapp/templates").json()
    chosen = next(t for t in templates if t["sid"] == APPOINTMENT)
    assert set(chosen["variables"]) == {"1", "2"} and "{{1}}" in chosen["body"]
    sent = api.post(
        "/api/send-message",
        json={"to": to, "content_sid": APPOINTMENT, "content_variables": {"1": "12/1", "2": "3pm"}},
    )
    assert sent.status_code == 201, sent.text
    emulated = api.get(
        f"/sandbox/twilio/2010-04-01/Accounts/{get_settings().account_sid}/Messages.json",
        params={"To": to},
        auth=(get_settings().account_sid, get_settings().auth_token),
    ).json()["messages"]
    assert "12/1" in emulated[0]["body"] and "3pm" in emulated[0]["body"]
    # Stored with the text Twilio rendered: what the customer received (issue 21).
    assert sent.json()["body"] == emulated[0]["body"]

    twilio_post(
        "/twilio/inbound",
        {"MessageSid": "SM" + "5" * 32, "From": to, "To": "whatsapp:+15005550006", "Body": "Hi"},
    )
    opened = wait_for(
        lambda: (w := api.get("/api/whatsapp/window", params={"to": to}).json())["open"] and w,
        what="the window to open",
    )
    assert opened["closes_at"] is not None
    assert api.post("/api/send-message", json={"to": to, "body": "Hello!"}).status_code == 201
