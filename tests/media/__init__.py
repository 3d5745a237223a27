"""Media engine tests: audio conversion, speech to text, text to speech, image description.

The helpers make real recordings with espeak-ng and inspect files with ffprobe, so the
tests check what a phone would receive rather than how the code got there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.conftest import missing

BOOKING = "Please book a table for four people on Friday evening"


def require_audio_tools() -> None:
    """Skip (fail in CI) when espeak-ng, ffmpeg or ffprobe is not installed."""
    for tool in ("espeak-ng", "ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            missing(f"{tool} is not installed")


def spoken_wav(text: str, voice: str = "en") -> bytes:
    """`text` spoken by espeak-ng (in `voice`: en, pl, ...) as a 22 kHz WAV file."""
    require_audio_tools()
    return subprocess.run(
        ["espeak-ng", "-v", voice, "--stdout", "--stdin"],
        input=text.encode(),
        capture_output=True,
        check=True,
    ).stdout


def recode(data: bytes, suffix: str, *args: str) -> bytes:
    """`data` converted by ffmpeg into a file named *suffix, the way a phone would send it."""
    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "in", Path(folder) / f"out{suffix}"
        source.write_bytes(data)
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(source), *args, str(target)],
            check=True,
        )
        return target.read_bytes()


def probe(data: bytes) -> dict[str, Any]:
    """ffprobe's view of a file: {"format": {...}, "streams": [...]}."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "probed"
        path.write_bytes(data)  # a file, not a pipe: ffprobe seeks to find the duration
        result = subprocess.run(
            ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
            capture_output=True,
            check=True,
        )
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed
