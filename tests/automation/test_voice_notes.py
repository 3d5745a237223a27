"""Voice notes and photos from the sandbox phone, end to end, with no network.

espeak-ng speaks, ffmpeg encodes as a WhatsApp phone would, the emulator keeps the file
behind basic auth, relaydesk downloads it, the local Whisper model transcribes it, and
the (fake) model answers from the transcript without ever seeing a Twilio address.
"""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from relaydesk.core.config import get_settings
from relaydesk.core.db import utcnow
from relaydesk.media.models import Attachment, MediaLink
from relaydesk.messaging.models import Message
from tests.automation.conftest import answers, finished
from tests.conftest import wait_for
from tests.fakes import FakeOpenAI
from tests.media import BOOKING, probe, recode, spoken_wav

CUSTOMER = "whatsapp:+48600300001"
TWILIO_TRACES = re.compile(r"twilio\.com|/2010-04-01/|\b(MM|ME|SM|AC)[0-9a-f]{32}\b", re.I)


def voice_note(text: str) -> bytes:
    """`text` as a WhatsApp voice note: OGG with the Opus codec."""
    return recode(spoken_wav(text), ".ogg", "-c:a", "libopus", "-b:a", "24k")


def png(width: int = 8, height: int = 6) -> bytes:
    """A small real PNG image."""
    return subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
         f"color=c=red:s={width}x{height}", "-frames:v", "1", "-f", "image2pipe",
         "-vcodec", "png", "-"],
        capture_output=True,
        check=True,
    ).stdout  # fmt: skip


def phone_sends(
    api: httpx.Client, files: list[tuple[str, bytes, str]], body: str = "", **fields: str
) -> str:
    """The sandbox phone sends files; returns the inbound message's SID."""
    answer = api.post(
        "/sandbox/phone/messages",
        data={"from": CUSTOMER, "body": body, **fields},
        files=[("media", item) for item in files],
    )
    assert answer.status_code == 201, answer.text
    sid = str(answer.json()["sid"])
    assert sid.startswith("SM") or sid.startswith("MM")
    return sid


def inbound_message(db: Any, sid: str) -> Message:
    found: Message = wait_for(
        lambda: db.scalar(select(Message).where(Message.sid == sid)), what=f"message {sid}"
    )
    return found


def settled(db: Any, message_id: int) -> list[Attachment]:
    """The message's attachments once none is pending any more."""

    seen: list[str] = []

    def check() -> list[Attachment] | None:
        db.expire_all()
        rows = list(db.scalars(select(Attachment).where(Attachment.message_id == message_id)).all())
        seen[:] = [f"{r.id}:{r.state}:{r.attempts}:{r.error}" for r in rows]
        return rows if rows and all(r.state not in ("pending", "working") for r in rows) else None

    try:
        result: list[Attachment] = wait_for(check, timeout=120, what="the attachments")
    except AssertionError:
        processed = db.scalar(select(Message.processed_at).where(Message.id == message_id))
        raise AssertionError(
            f"message {message_id}: attachments {seen or 'none recorded'}; "
            f"handed to its handlers at {processed}"
        ) from None
    return result


def test_a_voice_note_is_transcribed_and_answered_from_its_words(
    api: httpx.Client, db: Any, ai_on: Callable[..., Any], openai_fake: FakeOpenAI
) -> None:
    ai_on()
    note = voice_note(BOOKING)
    sid = phone_sends(api, [("note.ogg", note, "audio/ogg")])
    message = inbound_message(db, sid)

    [attachment] = settled(db, message.id)
    assert attachment.state == "stored", attachment.error
    assert attachment.content_type == "audio/ogg" and attachment.size == len(note)
    transcript = (attachment.transcript or "").lower()
    assert "table" in transcript and "friday" in transcript, transcript

    # The answer was written from the transcript; no Twilio address or SID reached it.
    run = finished(db, sid)
    assert run.outcome == "ai", run.detail
    sent = " ".join(str(m["content"]) for r in openai_fake.requests for m in r["messages"])
    assert "friday" in sent.lower() and "voice message" in sent
    assert not TWILIO_TRACES.search(sent), sent
    [reply] = answers(db, "+48600300001")
    assert "friday" in reply.body.lower()

    # The API shows relaydesk's own address for the file, and the transcript.
    page = api.get("/api/messages", params={"participant": "+48600300001"}).json()
    shown = next(m for m in page["items"] if m["sid"] == sid)
    [item] = shown["media"]
    assert item["url"] == f"/media/{attachment.id}" and item["kind"] == "audio"
    assert "friday" in item["transcript"].lower()
    assert not TWILIO_TRACES.search(str(shown["media"]))
    assert api.get(item["url"]).content == note
    assert httpx.get(f"{api.base_url}{item['url']}").status_code == 401  # signed-in only

    # Transcripts are searchable.
    found = api.get("/api/messages", params={"q": "friday", "direction": "inbound"}).json()
    assert [m["sid"] for m in found["items"]] == [sid]


def test_an_image_reaches_the_vision_model_as_base64_and_its_description_the_answer(
    api: httpx.Client,
    db: Any,
    ai_on: Callable[..., Any],
    openai_fake: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(get_settings(), "vision_provider", "openai")
    ai_on()

    def reply(request: dict[str, Any]) -> str:
        content = request["messages"][-1]["content"]
        if isinstance(content, list):
            return "A red square with the words OPEN 24H."
        return "Echo: " + str(content)

    openai_fake.reply_with(reply)
    image = png()
    sid = phone_sends(api, [("photo.png", image, "image/png")], body="Is this your sign?")
    message = inbound_message(db, sid)
    [attachment] = settled(db, message.id)
    assert attachment.state == "stored"
    assert attachment.description == "A red square with the words OPEN 24H."

    vision = [r for r in openai_fake.requests if isinstance(r["messages"][-1]["content"], list)]
    [request] = vision
    parts = {p["type"]: p for p in request["messages"][-1]["content"]}
    url = parts["image_url"]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == image
    assert not TWILIO_TRACES.search(str(request))

    finished(db, sid)
    answer_request = openai_fake.requests[-1]["messages"][-1]["content"]
    assert "OPEN 24H" in answer_request and "Is this your sign?" in answer_request


def test_without_a_vision_model_the_answer_knows_an_image_arrived(
    api: httpx.Client, db: Any, ai_on: Callable[..., Any], openai_fake: FakeOpenAI
) -> None:
    ai_on()
    sid = phone_sends(api, [("photo.png", png(), "image/png")])
    finished(db, sid)
    assert openai_fake.requests[-1]["messages"][-1]["content"] == "[an image was received]"


def test_oversize_and_unsupported_files_are_refused_with_a_reason(
    api: httpx.Client, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = voice_note(BOOKING)
    monkeypatch.setattr(get_settings(), "media_max_bytes", len(big) - 1)
    message = inbound_message(db, phone_sends(api, [("note.ogg", big, "audio/ogg")]))
    [too_big] = settled(db, message.id)
    assert too_big.state == "refused" and too_big.sha256 is None
    assert "limit" in (too_big.error or "")

    monkeypatch.setattr(get_settings(), "media_max_bytes", 16 * 1024 * 1024)
    program = b"MZ\x90\x00" + b"\x00" * 200
    message = inbound_message(
        db,
        phone_sends(
            api,
            [("setup.exe", program, "application/x-msdownload")],
            **{"from": "+48600300002"},
        ),
    )
    [odd] = settled(db, message.id)
    assert odd.state == "refused"
    assert "application/x-msdownload" in (odd.error or "")
    shown = api.get("/api/messages", params={"participant": "+48600300002"}).json()["items"][0]
    assert shown["media"][0]["state"] == "refused" and shown["media"][0]["url"] is None


def test_a_voice_note_is_answered_with_a_voice_note_at_an_expiring_address(
    api: httpx.Client, db: Any, ai_on: Callable[..., Any], openai_fake: FakeOpenAI
) -> None:
    ai_on(voice_replies=True)
    sid = phone_sends(api, [("note.ogg", voice_note(BOOKING), "audio/ogg")])
    run = finished(db, sid)
    assert run.outcome == "ai", run.detail
    [reply] = answers(db, "+48600300001")
    assert "friday" in reply.body.lower()  # the text goes along as the fallback
    [item] = reply.media
    assert item["kind"] == "audio" and item["content_type"] == "audio/ogg"

    link = db.scalar(select(MediaLink).where(MediaLink.purpose == "voice_reply"))
    assert link is not None and link.expires_at > utcnow() + timedelta(minutes=30)
    public = f"{get_settings().base_url}/m/{link.token}"
    # Twilio fetches it from the public address, without credentials.
    fetched = httpx.get(public)
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "audio/ogg"
    assert probe(fetched.content)["streams"][0]["codec_name"] == "opus"
    assert len(link.token) >= 40

    db.execute(
        update(MediaLink)
        .where(MediaLink.id == link.id)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    db.commit()
    gone = httpx.get(public)
    assert gone.status_code == 410 and "expired" in gone.text
    assert httpx.get(f"{get_settings().base_url}/m/{'x' * 43}").status_code == 404


def test_a_text_message_gets_a_text_answer_even_with_voice_replies_on(
    api: httpx.Client, db: Any, ai_on: Callable[..., Any], inbound: Callable[..., str]
) -> None:
    ai_on(voice_replies=True)
    sid = inbound(CUSTOMER, "Hello there", to="whatsapp:+15005550006")
    finished(db, sid)
    [reply] = answers(db, "+48600300001")
    assert reply.media == [] and reply.body == "Echo: Hello there"


def test_an_assistant_with_voice_replies_answers_a_voice_note_with_voice(
    api: httpx.Client, db: Any, ai_on: Callable[..., Any], openai_fake: FakeOpenAI
) -> None:
    ai_on(enabled=False)
    created = api.post(
        "/api/assistants",
        json={"name": "Recepcja", "system_prompt": "You take bookings.", "voice_replies": True},
    )
    assert created.status_code == 201 and created.json()["voice_replies"] is True
    bound = api.post(
        "/api/phone-numbers", json={"number": "+15005550006", "assistant_id": created.json()["id"]}
    )
    assert bound.status_code == 201, bound.text
    sid = phone_sends(api, [("note.ogg", voice_note(BOOKING), "audio/ogg")])
    assert finished(db, sid).outcome == "assistant"
    [reply] = answers(db, "+48600300001")
    assert reply.source == "assistant" and "friday" in reply.body.lower()
    [item] = reply.media
    assert item["kind"] == "audio" and item["state"] == "stored"
    spoken = api.get(item["url"])
    assert probe(spoken.content)["streams"][0]["codec_name"] == "opus"


def test_a_file_whose_job_was_lost_is_picked_up_by_the_sweep(api: httpx.Client, db: Any) -> None:
    from relaydesk.media import processing as media

    message = inbound_message(db, phone_sends(api, [("photo.png", png(), "image/png")]))
    [stored] = settled(db, message.id)
    assert stored.state == "stored"
    # As if the worker died before its job ran: pending, never tried, a while ago.
    db.execute(
        update(Attachment)
        .where(Attachment.id == stored.id)
        .values(
            state="pending", attempts=0, sha256=None, updated_at=utcnow() - timedelta(minutes=5)
        )
    )
    db.commit()
    media.sweep()
    [again] = settled(db, message.id)
    assert again.state == "stored" and again.attempts == 1 and again.sha256 == stored.sha256
