"""The Standard Webhooks signature (https://www.standardwebhooks.com).

The secret is `whsec_` and the base64 of 24 to 64 random bytes; the signature of a
delivery is `v1,` and the base64 HMAC-SHA256, keyed with those bytes, of
"{webhook-id}.{webhook-timestamp}.{body}". Receivers verify it with any Standard
Webhooks library and reject timestamps more than a few minutes away from their clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

PREFIX = "whsec_"
MIN_BYTES, MAX_BYTES = 24, 64


def new_secret() -> str:
    """A fresh signing secret (32 random bytes)."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def key_of(secret: str) -> bytes | None:
    """The HMAC key of a `whsec_` secret, or None when it is not one."""
    if not secret.startswith(PREFIX):
        return None
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if MIN_BYTES <= len(key) <= MAX_BYTES else None


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header's value for one attempt."""
    key = key_of(secret)
    if key is None:
        raise ValueError("not a whsec_ secret")
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers and the content type."""
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }
