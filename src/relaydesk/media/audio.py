"""Audio conversion with ffmpeg: voice notes in, speech-model and messaging formats out.

The input goes through a temporary file rather than a pipe: MP4-family files (M4A, 3GP)
often keep their index at the end, which ffmpeg can only reach by seeking.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from relaydesk.core.errors import Invalid
from relaydesk.core.i18n import N_

AudioFormat = Literal["ogg_opus", "mp3"]

SAMPLE_RATE = 16_000  # what Whisper models expect
TIMEOUT_SECONDS = 120.0

_CONTENT_TYPES: dict[AudioFormat, str] = {"ogg_opus": "audio/ogg", "mp3": "audio/mpeg"}
_EXTENSIONS: dict[AudioFormat, str] = {"ogg_opus": ".ogg", "mp3": ".mp3"}
# WhatsApp plays a voice note only as mono Opus in OGG; MMS phones play MP3.
_ENCODERS: dict[AudioFormat, list[str]] = {
    "ogg_opus": ["-c:a", "libopus", "-b:a", "32k", "-application", "voip", "-f", "ogg"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"],
}
_PCM = ["-f", "s16le", "-c:a", "pcm_s16le"]
_BARE_VALUE = ["-of", "default=noprint_wrappers=1:nokey=1"]


class AudioError(Invalid):
    """The audio could not be read or converted; the message quotes ffmpeg."""

    code = "audio_error"


def content_type_for(fmt: AudioFormat) -> str:
    """The MIME type of a file in `fmt` ("audio/ogg", "audio/mpeg")."""
    return _CONTENT_TYPES[fmt]


def extension_for(fmt: AudioFormat) -> str:
    """The file name extension of `fmt`, with its dot (".ogg", ".mp3")."""
    return _EXTENSIONS[fmt]


def to_wav16k(data: bytes, *, max_seconds: float = 600) -> bytes:
    """Any common voice format (OGG/Opus, AMR, AAC/M4A, MP3, 3GP, WAV) as 16 kHz mono WAV."""
    limit = ["-t", f"{max_seconds:g}"]
    pcm = _ffmpeg(data, ["-map", "0:a:0", *limit, "-ac", "1", "-ar", str(SAMPLE_RATE), *_PCM])
    # ffmpeg cannot go back to fill in a WAV header's sizes on a pipe; write it here.
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm)
    return out.getvalue()


def encode(data: bytes, fmt: AudioFormat) -> bytes:
    """Re-encode audio as mono OGG/Opus (WhatsApp voice notes) or MP3 (MMS)."""
    return _ffmpeg(data, ["-map", "0:a:0", "-ac", "1", *_ENCODERS[fmt]])


def duration_seconds(data: bytes) -> float | None:
    """How long the audio plays, or None when ffprobe cannot tell."""
    with _input_file(data) as path:
        args = ["ffprobe", "-v", "error", "-show_entries", "format=duration", *_BARE_VALUE]
        result = _run([*args, str(path)])
    if result.returncode != 0:
        return None
    try:
        return float(result.stdout.decode().strip())
    except ValueError:  # "N/A" for streams without a known length
        return None


def _ffmpeg(data: bytes, output_args: list[str]) -> bytes:
    if not data:
        raise AudioError(N_("The audio file is empty"), params={})
    with _input_file(data) as path:
        args = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path)]
        result = _run([*args, "-vn", *output_args, "pipe:1"])
        if result.returncode != 0 or not result.stdout:
            raise AudioError(
                N_("Could not convert the audio: %(reason)s"),
                params={"reason": _last_line(result.stderr, path)},
            )
    return result.stdout


@contextmanager
def _input_file(data: bytes) -> Iterator[Path]:
    """The bytes in a private temporary file, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="relaydesk-audio-") as folder:
        path = Path(folder) / "input"
        path.write_bytes(data)
        yield path


def _run(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            args, stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT_SECONDS
        )
    except FileNotFoundError:
        raise AudioError(
            N_("%(program)s is not installed; audio cannot be converted"),
            params={"program": args[0]},
        ) from None
    except subprocess.TimeoutExpired:
        raise AudioError(
            N_("%(program)s took longer than %(seconds)s s and was stopped"),
            params={"program": args[0], "seconds": f"{TIMEOUT_SECONDS:g}"},
        ) from None


def _last_line(stderr: bytes, path: Path) -> str:
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    if not lines:
        return N_("ffmpeg produced no audio")
    # The temporary path means nothing to a person; ffmpeg prefixes messages with it.
    return lines[-1].replace(f"{path}: ", "").replace(str(path), "the file")
