"""Voice replies: espeak-ng locally or ElevenLabs, delivered as OGG/Opus or MP3."""

from __future__ import annotations

import httpx
import pytest

from relaydesk.media.audio import AudioFormat
from relaydesk.media.speech import MAX_TEXT_CHARS, SpeechError, synthesize
from tests.fakes.elevenlabs import FakeElevenLabs, sample_mp3
from tests.fakes.elevenlabs import elevenlabs_fake as elevenlabs_fake  # the fixture
from tests.media import probe, require_audio_tools

KEY = "xi-test-key-0123456789"
VOICE = "21m00Tcm4TlvDq8ikWAM"


def codecs(data: bytes) -> tuple[str, list[str]]:
    info = probe(data)
    return info["format"]["format_name"], [s["codec_name"] for s in info["streams"]]


def eleven(
    fake: FakeElevenLabs,
    text: str = "Your table is booked.",
    *,
    fmt: AudioFormat = "ogg_opus",
    voice: str = VOICE,
    api_key: str = KEY,
) -> bytes:
    """Speak through ElevenLabs' SDK against the fake."""
    return synthesize(
        text,
        fmt=fmt,
        provider="elevenlabs",
        voice=voice,
        model="eleven_turbo_v2_5",
        api_key=api_key,
        base_url=fake.base_url,
    )


@pytest.fixture(autouse=True)
def _tools() -> None:
    require_audio_tools()


def test_espeak_reply_is_an_ogg_opus_voice_note() -> None:
    voice_note = synthesize("Your table is booked for Friday.", fmt="ogg_opus", provider="espeak")

    assert codecs(voice_note) == ("ogg", ["opus"])
    assert float(probe(voice_note)["format"]["duration"]) > 1


def test_espeak_reply_can_be_mp3_for_mms() -> None:
    assert codecs(synthesize("See you soon.", fmt="mp3", provider="espeak", voice="en-us")) == (
        "mp3",
        ["mp3"],
    )


def test_text_that_looks_like_an_option_is_spoken_not_obeyed() -> None:
    # On espeak-ng's command line "--help" would print help instead of audio.
    assert codecs(synthesize("--help", fmt="mp3", provider="espeak")) == ("mp3", ["mp3"])


def test_espeak_voice_that_is_an_option_is_refused() -> None:
    with pytest.raises(SpeechError, match="not an espeak-ng voice"):
        synthesize("Hello", fmt="mp3", provider="espeak", voice="--stdout")


def test_unknown_espeak_voice_is_a_clear_error() -> None:
    with pytest.raises(SpeechError, match="espeak-ng failed"):
        synthesize("Hello", fmt="mp3", provider="espeak", voice="xx-nosuchvoice")


def test_nothing_to_say_is_refused() -> None:
    with pytest.raises(SpeechError, match="no text"):
        synthesize(" \n ", fmt="mp3", provider="espeak")


def test_elevenlabs_request_and_reply_become_a_whatsapp_voice_note(
    elevenlabs_fake: FakeElevenLabs,
) -> None:
    voice_note = eleven(elevenlabs_fake)

    assert codecs(voice_note) == ("ogg", ["opus"])
    [request] = elevenlabs_fake.requests
    assert (request.method, request.path) == ("POST", f"/v1/text-to-speech/{VOICE}")
    assert request.headers["xi-api-key"] == KEY
    assert request.query["output_format"] == "mp3_44100_128"
    assert request.body["text"] == "Your table is booked."
    assert request.body["model_id"] == "eleven_turbo_v2_5"


def test_elevenlabs_mp3_is_passed_through_for_mms(elevenlabs_fake: FakeElevenLabs) -> None:
    assert eleven(elevenlabs_fake, fmt="mp3") == sample_mp3()


def test_long_text_is_cut_at_a_word_before_it_is_sent(elevenlabs_fake: FakeElevenLabs) -> None:
    eleven(elevenlabs_fake, "word " * 1000, fmt="mp3")

    [request] = elevenlabs_fake.requests
    assert len(request.body["text"]) <= MAX_TEXT_CHARS
    assert request.body["text"].endswith("word")


def test_elevenlabs_refusing_the_key_is_permanent_and_hides_it(
    elevenlabs_fake: FakeElevenLabs,
) -> None:
    elevenlabs_fake.api_key = "xi-the-right-one"

    with pytest.raises(SpeechError, match="rejected the API key") as caught:
        eleven(elevenlabs_fake)

    assert not caught.value.transient
    assert KEY not in caught.value.message


def test_elevenlabs_rate_limit_is_transient_and_not_retried_by_the_sdk(
    elevenlabs_fake: FakeElevenLabs,
) -> None:
    elevenlabs_fake.fail_next(429, times=3)

    with pytest.raises(SpeechError, match="429") as caught:
        eleven(elevenlabs_fake)

    assert caught.value.transient
    assert len(elevenlabs_fake.requests) == 1


def test_elevenlabs_unknown_voice_says_why(elevenlabs_fake: FakeElevenLabs) -> None:
    elevenlabs_fake.voices = ("another-voice",)

    with pytest.raises(SpeechError, match="does not exist") as caught:
        eleven(elevenlabs_fake)

    assert not caught.value.transient


@pytest.mark.parametrize("missing", ["api_key", "voice"])
def test_elevenlabs_without_key_or_voice_is_not_attempted(
    elevenlabs_fake: FakeElevenLabs, missing: str
) -> None:
    with pytest.raises(SpeechError, match="ElevenLabs needs"):
        if missing == "api_key":
            eleven(elevenlabs_fake, api_key="")
        else:
            eleven(elevenlabs_fake, voice="")
    assert elevenlabs_fake.requests == []


def test_fake_elevenlabs_refuses_what_the_openapi_spec_refuses(
    elevenlabs_fake: FakeElevenLabs,
) -> None:
    url = f"{elevenlabs_fake.base_url}/v1/text-to-speech/{VOICE}"

    no_text = httpx.post(url, json={"model_id": "eleven_multilingual_v2"})
    wrong_type = httpx.post(url, json={"text": "Hi", "seed": "seven"})
    bad_format = httpx.post(url, params={"output_format": "wav_1"}, json={"text": "Hi"})
    good = httpx.post(url, params={"enable_logging": "true"}, json={"text": "Hi"})

    assert no_text.status_code == 422
    assert no_text.json()["detail"][0]["loc"] == ["body"]
    assert wrong_type.status_code == 422
    assert wrong_type.json()["detail"][0]["loc"] == ["body", "seed"]
    assert bad_format.status_code == 422
    assert bad_format.json()["detail"][0]["loc"] == ["query", "output_format"]
    assert (good.status_code, good.headers["content-type"]) == (200, "audio/mpeg")
