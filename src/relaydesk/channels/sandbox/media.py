"""Customers' files in the emulator: SIDs, types, and Twilio-like signed CDN addresses."""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from relaydesk.channels.sandbox.render import API_VERSION

MAX_FILES = 10  # per message, as Twilio allows
MAX_FILES_WHATSAPP = 1  # WhatsApp carries one file per message
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # WhatsApp's limit for a whole message
# Twilio's redirect from an authenticated media URL is "only valid for 4 hours".
CDN_LIFETIME_SECONDS = 4 * 3600
CDN_PATH = "/cdn/media/{sid}"

# Types Python's table lacks or spells differently from what phones send.
_EXTRA_TYPES = {
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".oga": "audio/ogg",
    ".amr": "audio/amr",
    ".3gp": "video/3gpp",
    ".aac": "audio/aac",
    ".m4a": "audio/mp4",
    ".webp": "image/webp",
    ".vcf": "text/vcard",
}
GENERIC_TYPES = frozenset({"", "application/octet-stream"})


@dataclass(frozen=True)
class Upload:
    """A file the simulated customer attached, its type already decided."""

    filename: str | None
    content_type: str
    data: bytes


def new_media_sid() -> str:
    """A Media SID: `ME` then 32 hex digits."""
    return "ME" + secrets.token_hex(16)


def content_type_for(declared: str | None, filename: str | None) -> str:
    """The upload's own type, else a guess from its name, else application/octet-stream."""
    declared = (declared or "").split(";", 1)[0].strip().lower()
    if declared not in GENERIC_TYPES:
        return declared
    suffix = ("." + filename.rsplit(".", 1)[-1].lower()) if filename and "." in filename else ""
    guessed = _EXTRA_TYPES.get(suffix) or mimetypes.guess_type(f"x{suffix}")[0]
    return guessed or "application/octet-stream"


def media_path(account_sid: str, message_sid: str, media_sid: str) -> str:
    """The media resource's URI relative to https://api.twilio.com (no `.json`)."""
    return f"/{API_VERSION}/Accounts/{account_sid}/Messages/{message_sid}/Media/{media_sid}"


def cdn_query(media_sid: str, auth_token: str, now: float | None = None) -> str:
    """`Expires=...&Signature=...` for a CDN address valid CDN_LIFETIME_SECONDS from now."""
    expires = int(now if now is not None else time.time()) + CDN_LIFETIME_SECONDS
    return urlencode({"Expires": expires, "Signature": _signature(media_sid, expires, auth_token)})


def cdn_url(prefix: str, media_sid: str, auth_token: str) -> str:
    """The signed CDN address of a file under `prefix` (the emulator's API base)."""
    return f"{prefix}{CDN_PATH.format(sid=media_sid)}?{cdn_query(media_sid, auth_token)}"


def cdn_signature_ok(
    media_sid: str, expires: str, signature: str, auth_token: str, now: float | None = None
) -> bool:
    """True when the signature is ours for this file and the address has not expired."""
    if not expires.isdigit():
        return False
    if int(expires) < int(now if now is not None else time.time()):
        return False
    expected = _signature(media_sid, int(expires), auth_token)
    return hmac.compare_digest(expected.encode(), signature.encode())


def _signature(media_sid: str, expires: int, auth_token: str) -> str:
    message = f"{media_sid}:{expires}".encode()
    return hmac.new(auth_token.encode(), message, hashlib.sha256).hexdigest()
