"""The chat's media over plain HTTP: attachments, locations, contacts, buttons, the
composer's files and the WhatsApp window with its templates."""

from __future__ import annotations

import html
import json
import re
import secrets
import struct
import zlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from relaydesk.core.db import session_scope, utcnow
from relaydesk.media import service as media
from relaydesk.media import store
from relaydesk.media.models import Attachment
from relaydesk.messaging import templates
from relaydesk.messaging.models import Conversation, Message
from relaydesk.messaging.templates import TemplatesUnavailable
from tests.web.conftest import csrf_of

Panel = Callable[[str], httpx.Client]
Post = Callable[..., httpx.Response]

CUSTOMER = "+48600100310"
OUR_NUMBER = "+15005550006"
VCARD = (
    b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Anna Kowalska\r\n"
    b"TEL;TYPE=CELL:+48 600 100 200\r\nEND:VCARD\r\n"
)


def png_pixel(width: int = 1, height: int = 1) -> bytes:
    """A valid PNG of one red colour (1×1 by default), built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress((b"\x00" + b"\xd0\x30\x30" * width) * height)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def customer_writes(post: Post, sender: str = CUSTOMER, body: str = "", **extra: str) -> str:
    """An inbound message through the signed webhook; returns its SID."""
    sid = "SM" + secrets.token_hex(16)
    params = {"MessageSid": sid, "From": sender, "To": OUR_NUMBER, "Body": body, "NumMedia": "0"}
    if sender.startswith("whatsapp:"):
        params["To"] = f"whatsapp:{OUR_NUMBER}"
    answer = post("/twilio/inbound", {**params, **extra})
    assert answer.status_code == 200, answer.text
    return sid


def attach(sid: str, files: list[dict[str, Any]]) -> list[int]:
    """Give a stored message attachments as the media service keeps them."""
    with session_scope() as session:
        message = session.scalar(select(Message).where(Message.sid == sid))
        assert message is not None
        rows = []
        for position, spec in enumerate(files):
            data = spec.pop("data", None)
            row = Attachment(
                message_id=message.id,
                position=position,
                sha256=store.put(data) if data is not None else None,
                size=len(data) if data is not None else spec.pop("size", None),
                attempts=0,
                **spec,
            )
            session.add(row)
            rows.append(row)
        session.flush()
        message.media = [media.view(row) for row in rows]
        message.num_media = len(rows)
        return [row.id for row in rows]


def as_htmx(client: httpx.Client) -> dict[str, str]:
    return {"X-CSRF-Token": csrf_of(client), "HX-Request": "true"}


def close_window(participant: str) -> None:
    """The customer last wrote two days ago: the WhatsApp window is closed."""
    with session_scope() as session:
        session.execute(
            update(Conversation)
            .where(Conversation.participant == participant)
            .values(last_inbound_at=utcnow() - timedelta(days=2))
        )


def test_thread_shows_every_kind_of_attachment(panel: Panel, twilio_post: Post) -> None:
    sid = customer_writes(twilio_post, body="Zdjęcie i notatka głosowa")
    image, audio, refused, pending, pdf, contact = attach(
        sid,
        [
            {
                "content_type": "image/png",
                "state": "stored",
                "data": png_pixel(),
                "description": "A red square",
            },
            {
                "content_type": "audio/ogg",
                "state": "stored",
                "data": b"OggS-not-really",
                "transcript": "Proszę o fakturę",
            },
            {
                "content_type": "application/x-msdownload",
                "state": "refused",
                "error": "files of type application/x-msdownload are not accepted",
            },
            {"content_type": "video/mp4", "state": "pending"},
            {"content_type": "application/pdf", "state": "stored", "data": b"%PDF-1.4" * 300},
            {"content_type": "text/vcard", "state": "stored", "data": VCARD},
        ],
    )
    page = panel("viewer").get(f"/chat/{CUSTOMER}")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert re.search(rf'<img src="/media/{image}"[^>]*loading="lazy"', page.text)
    assert f'data-viewer="/media/{image}"' in page.text
    assert 'id="media-viewer"' in page.text  # the dialog the thumbnail opens
    assert "A red square" in text and '<details class="media-caption">' in page.text
    assert re.search(rf'<audio [^>]*preload="none" src="/media/{audio}"', page.text)
    assert "Transcript" in text and "Proszę o fakturę" in text
    assert "refused:" in text and "application/x-msdownload are not accepted" in text
    assert f'data-media-id="{pending}" data-media-state="pending"' in page.text
    assert "Downloading…" in text
    assert "every 3s" in page.text  # the thread asks again while a file is downloading
    assert re.search(rf'<a class="media-file" href="/media/{pdf}" download>', page.text)
    assert "application/pdf" in text and "2.4 kB" in text
    assert f'data-media-id="{contact}"' in page.text
    assert "Anna Kowalska" in text and 'href="tel:+48600100200"' in page.text
    assert refused  # shown above by its reason


def test_finished_downloads_stop_the_polling(panel: Panel, twilio_post: Post) -> None:
    sid = customer_writes(twilio_post, body="done")
    attach(sid, [{"content_type": "image/png", "state": "stored", "data": png_pixel()}])
    fragment = panel("viewer").get(f"/chat/{CUSTOMER}/thread")
    assert fragment.status_code == 200
    assert "every 3s" not in fragment.text


def test_location_and_button_reply_show_as_a_card_and_a_chip(
    panel: Panel, twilio_post: Post
) -> None:
    customer_writes(
        twilio_post,
        sender=f"whatsapp:{CUSTOMER}",
        Latitude="52.2297",
        Longitude="21.0122",
        Label="Biuro",
        Address="Marszałkowska 1, Warszawa",
    )
    customer_writes(
        twilio_post,
        sender=f"whatsapp:{CUSTOMER}",
        body="Confirm",
        ButtonText="Confirm",
        ButtonPayload="confirm-123",
    )
    page = panel("viewer").get(f"/chat/{CUSTOMER}/thread")
    text = html.unescape(page.text)
    assert "data-location" in page.text
    assert "Biuro" in text and "Marszałkowska 1, Warszawa" in text
    assert "52.229700, 21.012200" in text
    link = re.search(r'<a href="(https://www\.openstreetmap\.org/[^"]+)"([^>]*)>', text)
    assert link and "mlat=52.229700" in link.group(1) and "mlon=21.012200" in link.group(1)
    assert 'rel="noopener noreferrer"' in link.group(2) and 'target="_blank"' in link.group(2)
    assert re.search(r'<span class="chip" data-button-reply>Confirm</span>', page.text)
    assert '<p class="bubble-body">Confirm</p>' not in page.text  # not twice


def test_composer_sends_an_uploaded_file_without_text(
    panel: Panel, twilio_post: Post, db: Any
) -> None:
    customer_writes(twilio_post, body="Proszę o zdjęcie")
    client = panel("operator")
    headers = as_htmx(client)
    uploaded = client.post(
        "/api/media",
        files={"file": ("paczka.png", png_pixel(), "image/png")},
        headers={"X-CSRF-Token": headers["X-CSRF-Token"]},
    )
    assert uploaded.status_code == 201, uploaded.text
    url = uploaded.json()["url"]
    answer = client.post(
        f"/chat/{CUSTOMER}/send",
        data={"body": "", "channel": "sms", "media_urls": [url, url]},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    assert "notice-success" in answer.text
    sent = db.scalar(select(Message).where(Message.direction == "outbound"))
    assert sent.num_media == 2 and sent.channel == "mms"
    assert [item["content_type"] for item in sent.media] == ["image/png", "image/png"]
    # The operator's chat shows the file from relaydesk's own copy.
    thread = client.get(f"/chat/{CUSTOMER}/thread").text
    assert f'<img src="/media/{sent.media[0]["id"]}"' in thread


def test_messages_tab_also_sends_files(panel: Panel, db: Any) -> None:
    client = panel("operator")
    headers = as_htmx(client)
    uploaded = client.post(
        "/api/media",
        files={"file": ("a.png", png_pixel(), "image/png")},
        headers={"X-CSRF-Token": headers["X-CSRF-Token"]},
    )
    answer = client.post(
        "/messages/send",
        data={"to": "+48600100311", "body": "Faktura", "media_urls": uploaded.json()["url"]},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    sent = db.scalar(select(Message).where(Message.direction == "outbound"))
    assert sent.body == "Faktura" and sent.num_media == 1


def test_a_file_whatsapp_refuses_is_explained(panel: Panel, twilio_post: Post) -> None:
    customer_writes(twilio_post, sender=f"whatsapp:{CUSTOMER}", body="hej")
    client = panel("operator")
    headers = as_htmx(client)
    uploaded = client.post(
        "/api/media",
        files={"file": ("notes.txt", b"plain words", "text/plain")},
        headers={"X-CSRF-Token": headers["X-CSRF-Token"]},
    )
    assert uploaded.status_code == 201, uploaded.text
    answer = client.post(
        f"/chat/{CUSTOMER}/send",
        data={"channel": "whatsapp", "media_urls": uploaded.json()["url"]},
        headers=headers,
    )
    assert answer.status_code == 422
    assert "notice-error" in answer.text
    assert "WhatsApp does not accept files of type text/plain" in html.unescape(answer.text)


def test_open_window_is_shown_with_its_closing_time(panel: Panel, twilio_post: Post) -> None:
    customer_writes(twilio_post, sender=f"whatsapp:{CUSTOMER}", body="hej")
    page = panel("operator").get(f"/chat/{CUSTOMER}")
    assert 'data-window="open"' in page.text
    assert "WhatsApp window open until" in page.text
    # Templates are still on offer, folded away.
    assert re.search(r'<details class="templates" data-templates\s*>', page.text)


def test_sms_conversation_has_no_window(panel: Panel, twilio_post: Post) -> None:
    customer_writes(twilio_post, body="hej")
    page = panel("operator").get(f"/chat/{CUSTOMER}")
    assert 'data-window="none"' in page.text
    assert "/templates" not in page.text  # Twilio's template list is not even asked for


def test_free_text_to_a_closed_window_explains_the_window(
    panel: Panel, twilio_post: Post, db: Any
) -> None:
    customer_writes(twilio_post, sender=f"whatsapp:{CUSTOMER}", body="hej")
    close_window(CUSTOMER)
    client = panel("operator")
    page = client.get(f"/chat/{CUSTOMER}")
    assert 'data-window="closed"' in page.text
    assert "The 24-hour window is closed: only approved templates can be sent." in page.text
    assert re.search(r'<details class="templates" data-templates\s*open>', page.text)
    answer = client.post(
        f"/chat/{CUSTOMER}/send",
        data={"body": "Are you there?", "channel": "whatsapp"},
        headers=as_htmx(client),
    )
    assert answer.status_code == 422
    text = html.unescape(answer.text)
    assert "The WhatsApp 24-hour window is closed: only an approved template can be sent." in text
    assert db.scalar(select(Message).where(Message.direction == "outbound")) is None


def test_template_is_sent_with_its_variables(panel: Panel, twilio_post: Post, db: Any) -> None:
    customer_writes(twilio_post, sender=f"whatsapp:{CUSTOMER}", body="hej")
    close_window(CUSTOMER)
    client = panel("operator")
    picker = client.get(f"/chat/{CUSTOMER}/templates")
    assert picker.status_code == 200
    chosen = next(t for t in templates.list_templates() if t["friendly_name"] == "order_shipped")
    assert f'<option value="{chosen["sid"]}">order_shipped (en)</option>' in picker.text
    assert 'name="var_value" value="12345"' in picker.text  # the default, prefilled
    assert html.escape(chosen["body"]) in picker.text  # the preview's starting text
    answer = client.post(
        f"/chat/{CUSTOMER}/send",
        data={
            "channel": "whatsapp",
            "content_sid": chosen["sid"],
            "var_key": ["1"],
            "var_value": ["PL-778"],
        },
        headers=as_htmx(client),
    )
    assert answer.status_code == 200, answer.text
    assert "notice-success" in answer.text
    sent = db.scalar(select(Message).where(Message.direction == "outbound"))
    assert sent.content_sid == chosen["sid"] and sent.channel == "whatsapp"
    assert json.loads(sent.content_variables) == {"1": "PL-778"}


def test_template_variables_must_pair_up(panel: Panel, twilio_post: Post) -> None:
    customer_writes(twilio_post, sender=f"whatsapp:{CUSTOMER}", body="hej")
    client = panel("operator")
    sid = templates.list_templates()[0]["sid"]
    answer = client.post(
        f"/chat/{CUSTOMER}/send",
        data={"channel": "whatsapp", "content_sid": sid, "var_key": ["1", "2"], "var_value": "x"},
        headers=as_htmx(client),
    )
    assert answer.status_code == 422
    assert "Every template variable needs a value" in answer.text


def test_unreachable_content_api_is_a_notice(
    panel: Panel, twilio_post: Post, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(*, fresh: bool = False) -> list[dict[str, Any]]:
        raise TemplatesUnavailable("Twilio's template list could not be read: cannot reach Twilio")

    monkeypatch.setattr(templates, "list_templates", unavailable)
    picker = panel("operator").get(f"/chat/{CUSTOMER}/templates")
    assert picker.status_code == 200
    assert "data-templates-error" in picker.text
    assert "cannot reach Twilio" in html.unescape(picker.text)


def test_viewers_get_no_template_picker(panel: Panel) -> None:
    answer = panel("viewer").get(f"/chat/{CUSTOMER}/templates")
    assert answer.status_code == 403
