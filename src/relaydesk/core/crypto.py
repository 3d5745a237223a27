"""Encryption of secrets kept in the database, keyed by SECRET_KEY."""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from relaydesk.core.config import get_settings
from relaydesk.core.errors import RelaydeskError
from relaydesk.core.i18n import N_

# Fixed, so the same SECRET_KEY always yields the same key; versioned so a future
# scheme can derive a different one without clashing.
_SALT = b"relaydesk settings v1"
_INFO = b"relaydesk settings encryption"


class SecretUnreadable(RelaydeskError):
    """A stored secret cannot be decrypted: SECRET_KEY changed or the value was tampered with."""

    status_code = 500
    code = "secret_unreadable"


@lru_cache(maxsize=4)
def _fernet(secret_key: str) -> Fernet:
    """Fernet keyed by HKDF-SHA256 of SECRET_KEY (cached: HKDF runs once per key)."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def _current() -> Fernet:
    key = get_settings().secret_key
    if not key:
        # load_settings() always fills it in; only hand-built Settings lack it.
        raise SecretUnreadable(
            N_("SECRET_KEY is not set: secrets cannot be stored or read"), params={}
        )
    return _fernet(key)


def encrypt(plain: str) -> str:
    """The ciphertext (URL-safe text) of `plain` under the current SECRET_KEY."""
    return _current().encrypt(plain.encode()).decode("ascii")


def decrypt(token: str) -> str:
    """The plain text of `token`; raises SecretUnreadable instead of returning garbage."""
    try:
        return _current().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise SecretUnreadable(
            N_(
                "A stored secret cannot be decrypted with the current SECRET_KEY "
                "(it changed since the secret was saved); enter the secret again"
            ),
            params={},
        ) from None
