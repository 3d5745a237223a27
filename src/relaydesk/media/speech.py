"""Text to speech: ElevenLabs (official SDK) or the local espeak-ng, then ffmpeg.

The result is a file Twilio can deliver: OGG/Opus for WhatsApp voice notes, MP3 for MMS.
"""

from __future__ import annotations

import re
import subprocess

from relaydesk.core.config import get_settings
from relaydesk.core.i18n import N_
from relaydesk.core.vendor import Kind, status_kind
from relaydesk.media import audio
from relaydesk.media.audio import AudioFormat
from relaydesk.media.providers import MediaProviderError

MAX_TEXT_CHARS = 2_000  # a voice reply is a short answer; this also caps ElevenLabs' bill
ESPEAK_DEFAULT_VOICE = "en"
ESPEAK_TIMEOUT_SECONDS = 60.0
ELEVENLABS_URL = "https://api.elevenlabs.io"
ELEVENLABS_OUTPUT = "mp3_44100_128"
ELEVENLABS_TIMEOUT_SECONDS = 60.0
# espeak-ng voice names: "en", "en-us", "pl", "mb/mb-en1", "en+f3". Never an option.
_ESPEAK_VOICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+/-]{0,63}")


class SpeechError(MediaProviderError):
    """A voice reply could not be synthesised."""

    code = "speech_error"


def synthesize(
    text: str,
    *,
    fmt: AudioFormat,
    provider: str | None = None,
    voice: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
) -> bytes:
    """Speak `text` as audio in `fmt`; None arguments come from settings."""
    settings = get_settings()
    chosen = provider or settings.tts_provider
    # TTS_VOICE and TTS_MODEL belong to the configured provider, not to another one.
    if chosen == settings.tts_provider:
        voice = voice or settings.tts_voice
    text = _shorten(text)
    if chosen == "espeak":
        wav = _espeak(text, voice or ESPEAK_DEFAULT_VOICE)
    elif chosen == "elevenlabs":
        mp3 = _elevenlabs(
            text,
            voice=voice,
            model=model or settings.tts_model,
            api_key=api_key or settings.elevenlabs_api_key,
            base_url=base_url or settings.elevenlabs_base_url or ELEVENLABS_URL,
        )
        if fmt == "mp3":
            return mp3
        wav = mp3
    else:
        raise SpeechError(
            N_("Unknown speech provider '%(provider)s' (elevenlabs or espeak)"),
            params={"provider": chosen},
        )
    try:
        return audio.encode(wav, fmt)
    except audio.AudioError as exc:
        raise SpeechError(
            N_("The voice reply could not be encoded: %(reason)s"), params={"reason": exc.message}
        ) from None


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise SpeechError(N_("There is no text to speak"), params={})
    if len(text) <= MAX_TEXT_CHARS:
        return text
    cut = text[:MAX_TEXT_CHARS]
    return cut.rsplit(" ", 1)[0] if " " in cut else cut


def _espeak(text: str, voice: str) -> bytes:
    if not _ESPEAK_VOICE.fullmatch(voice):
        raise SpeechError(
            N_("'%(voice)s' is not an espeak-ng voice name (e.g. en, en-us, pl)"),
            params={"voice": voice},
        )
    try:
        # The text goes through stdin: on the command line it could be read as an option.
        result = subprocess.run(
            ["espeak-ng", "-v", voice, "--stdout", "--stdin"],
            input=text.encode(),
            capture_output=True,
            timeout=ESPEAK_TIMEOUT_SECONDS,
        )
    except FileNotFoundError:
        raise SpeechError(
            N_("espeak-ng is not installed; install it or use ElevenLabs"), params={}
        ) from None
    except subprocess.TimeoutExpired:
        raise SpeechError(
            N_("espeak-ng took longer than %(seconds)s s"),
            params={"seconds": f"{ESPEAK_TIMEOUT_SECONDS:g}"},
        ) from None
    if result.returncode != 0 or not result.stdout:
        said = result.stderr.decode(errors="replace").strip().splitlines()
        raise SpeechError(
            N_("espeak-ng failed: %(reason)s"),
            params={"reason": said[-1] if said else N_("no audio")},
        )
    return result.stdout


def _elevenlabs(
    text: str, *, voice: str | None, model: str, api_key: str | None, base_url: str
) -> bytes:
    if not api_key:
        raise SpeechError(N_("ElevenLabs needs an API key: set ELEVENLABS_API_KEY"), params={})
    if not voice:
        raise SpeechError(
            N_("ElevenLabs needs a voice: set TTS_VOICE to an ElevenLabs voice id"), params={}
        )
    # The ElevenLabs SDK loads only when ElevenLabs speaks.
    import httpx
    from elevenlabs import ElevenLabs
    from elevenlabs.core.api_error import ApiError

    client = ElevenLabs(api_key=api_key, base_url=base_url, timeout=ELEVENLABS_TIMEOUT_SECONDS)
    try:
        # The audio streams back in chunks; the request is only sent while iterating.
        chunks = client.text_to_speech.convert(
            voice,
            text=text,
            model_id=model,
            output_format=ELEVENLABS_OUTPUT,
            request_options={"max_retries": 0},  # the caller's job decides about retrying
        )
        return b"".join(chunks)
    except ApiError as exc:
        raise _elevenlabs_error(exc, api_key) from None
    except httpx.TimeoutException:
        raise SpeechError(
            N_("ElevenLabs did not answer in time"), transient=True, params={}
        ) from None
    except httpx.HTTPError:
        raise SpeechError(
            N_("Could not connect to ElevenLabs"), transient=True, params={}
        ) from None


def _elevenlabs_error(exc: object, api_key: str) -> SpeechError:
    status = getattr(exc, "status_code", None) or 0
    body = getattr(exc, "body", None)
    detail = body.get("detail") if isinstance(body, dict) else None
    said = detail.get("message") if isinstance(detail, dict) else detail
    said = str(said or "").replace(api_key, "***")[:200]
    if status == 401:
        return SpeechError(N_("ElevenLabs rejected the API key (401)"), status=status, params={})
    if status_kind(status) is Kind.TRANSIENT:
        return SpeechError(
            N_("ElevenLabs is busy or failing (%(status)s); try again later"),
            transient=True,
            status=status,
            params={"status": status},
        )
    return SpeechError(
        N_("ElevenLabs refused the request (%(status)s): %(reason)s"),
        status=status or None,
        params={"status": status, "reason": said or N_("no reason given")},
    )
