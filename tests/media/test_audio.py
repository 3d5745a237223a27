"""Voice notes in any phone format become Whisper's WAV; replies become OGG/Opus or MP3."""

from __future__ import annotations

import io
import wave

import pytest

from relaydesk.media import audio
from tests.media import probe, recode, spoken_wav

PHONE_FORMATS = {
    "ogg_opus": (".ogg", "-c:a", "libopus"),
    "m4a_aac": (".m4a", "-c:a", "aac"),  # MP4 keeps its index at the end: needs seeking
    "3gp_aac": (".3gp", "-c:a", "aac", "-ar", "16000"),
    "mp3": (".mp3", "-c:a", "libmp3lame"),
    "wav": (".wav",),
}


def wav_params(data: bytes) -> tuple[int, int, int, float]:
    with wave.open(io.BytesIO(data)) as reader:
        frames, rate = reader.getnframes(), reader.getframerate()
        return reader.getnchannels(), reader.getsampwidth(), rate, frames / rate


def test_reply_is_ogg_with_opus_codec_for_whatsapp() -> None:
    speech = spoken_wav("Your table is booked.")

    encoded = audio.encode(speech, "ogg_opus")

    info = probe(encoded)
    assert info["format"]["format_name"] == "ogg"
    assert [s["codec_name"] for s in info["streams"]] == ["opus"]
    assert info["streams"][0]["channels"] == 1
    assert float(info["format"]["duration"]) > 0.5
    assert (audio.content_type_for("ogg_opus"), audio.extension_for("ogg_opus")) == (
        "audio/ogg",
        ".ogg",
    )


def test_reply_is_mp3_for_mms() -> None:
    encoded = audio.encode(spoken_wav("Your table is booked."), "mp3")

    assert [s["codec_name"] for s in probe(encoded)["streams"]] == ["mp3"]
    assert (audio.content_type_for("mp3"), audio.extension_for("mp3")) == ("audio/mpeg", ".mp3")


@pytest.mark.parametrize("phone_format", PHONE_FORMATS)
def test_voice_note_becomes_16k_mono_16bit_wav(phone_format: str) -> None:
    speech = spoken_wav("Please call me back tomorrow morning.")
    suffix, *args = PHONE_FORMATS[phone_format]
    note = recode(speech, suffix, *args)

    channels, width, rate, seconds = wav_params(audio.to_wav16k(note))

    assert (channels, width, rate) == (1, 2, 16000)
    assert seconds == pytest.approx(float(probe(note)["format"]["duration"]), abs=0.1)
    assert audio.duration_seconds(note) == pytest.approx(seconds, abs=0.1)


def test_long_voice_note_is_cut_at_max_seconds() -> None:
    speech = spoken_wav("This message goes on and on and on for quite a few seconds.")

    *_, seconds = wav_params(audio.to_wav16k(speech, max_seconds=1.5))

    assert seconds == pytest.approx(1.5, abs=0.01)


def test_garbage_is_refused_with_ffmpegs_reason() -> None:
    with pytest.raises(audio.AudioError) as caught:
        audio.to_wav16k(b"this is not audio at all " * 20)

    message = caught.value.message
    assert message.startswith("Could not convert the audio: ")
    assert "Invalid data found" in message
    assert "relaydesk-audio-" not in message  # no temporary path in front of a person


def test_file_without_sound_is_refused() -> None:
    spoken_wav("")  # only to require the tools
    with pytest.raises(audio.AudioError, match="empty"):
        audio.encode(b"", "mp3")
    assert audio.duration_seconds(b"not audio") is None
