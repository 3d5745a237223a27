"""Images are described by an OpenAI vision model that gets the picture itself, inline."""

from __future__ import annotations

import base64
import json
import struct
import zlib

import pytest

from relaydesk.core.config import get_settings
from relaydesk.media.providers import OpenAIAccess
from relaydesk.media.vision import DEFAULT_PROMPT, VisionError, describe_image, vision_enabled
from tests.fakes import FakeOpenAI

KEY = "sk-test-vision-key"


def tiny_png() -> bytes:
    """A real 2x2 red PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)  # 8-bit RGB
    pixels = zlib.compress((b"\x00" + b"\xff\x00\x00" * 2) * 2)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def access(fake: FakeOpenAI) -> OpenAIAccess:
    return OpenAIAccess(api_key=KEY, base_url=fake.base_url, timeout=10)


def test_image_goes_inline_as_a_data_url_and_the_description_comes_back(
    openai_fake: FakeOpenAI,
) -> None:
    openai_fake.reply_with(lambda body: "  A red square. It has no text.  ")
    image = tiny_png()

    text = describe_image(image, "image/png", openai=access(openai_fake))

    assert text == "A red square. It has no text."
    [request] = openai_fake.requests
    assert request["model"] == get_settings().vision_model
    [message] = request["messages"]
    assert message["role"] == "user"
    text_part, image_part = message["content"]
    assert text_part == {"type": "text", "text": DEFAULT_PROMPT}
    url = image_part["image_url"]["url"]
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    assert base64.b64decode(url.removeprefix(prefix)) == image
    assert "twilio" not in json.dumps(request).lower()
    assert openai_fake.headers[0]["authorization"] == f"Bearer {KEY}"


def test_prompt_and_model_can_be_chosen(openai_fake: FakeOpenAI) -> None:
    describe_image(
        tiny_png(),
        "image/png; charset=binary",
        model="gpt-4o",
        prompt="Opisz zdjęcie po polsku.",
        openai=access(openai_fake),
    )

    [request] = openai_fake.requests
    assert request["model"] == "gpt-4o"
    text_part, image_part = request["messages"][0]["content"]
    assert text_part["text"] == "Opisz zdjęcie po polsku."
    assert image_part["image_url"]["url"].startswith("data:image/png;base64,")


def test_a_file_that_is_not_an_image_is_refused_before_asking(openai_fake: FakeOpenAI) -> None:
    with pytest.raises(VisionError, match="Only images"):
        describe_image(b"%PDF-1.7", "application/pdf", openai=access(openai_fake))
    assert openai_fake.requests == []


def test_provider_trouble_is_a_transient_vision_error(openai_fake: FakeOpenAI) -> None:
    openai_fake.fail_next(500)

    with pytest.raises(VisionError) as caught:
        describe_image(tiny_png(), "image/png", openai=access(openai_fake))

    assert caught.value.transient
    assert KEY not in caught.value.message


def test_vision_is_enabled_only_for_the_openai_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    monkeypatch.setattr(settings, "vision_provider", "none")
    assert not vision_enabled()
    monkeypatch.setattr(settings, "vision_provider", "openai")
    assert vision_enabled()
