"""Access control for the emulator's own (non-Twilio) routes: phone, config, reset."""

from __future__ import annotations

import base64
import binascii
import secrets

from fastapi import HTTPException, Request, status

from relaydesk.auth.models import ROLE_RANK
from relaydesk.channels.twilio.account import current_account_async
from relaydesk.core.config import Settings, get_settings
from relaydesk.core.errors import Unauthorized
from relaydesk.deps import current_principal


def basic_credentials_ok(request: Request, settings: Settings) -> bool:
    """True when the request carries HTTP Basic auth with the Account SID and auth token."""
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return False
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    # Compare both halves in constant time so neither leaks through timing.
    user_ok = secrets.compare_digest(user.encode(), settings.account_sid.encode())
    password_ok = secrets.compare_digest(password.encode(), settings.auth_token.encode())
    return bool(sep) and user_ok and password_ok


def bearer_operator_ok(request: Request, settings: Settings) -> bool:
    """True when, inside relaydesk, the request carries an API token of an operator or admin."""
    if not settings.embedded_sandbox:
        return False  # a standalone emulator has no relaydesk users
    if not request.headers.get("authorization", "").lower().startswith("bearer "):
        return False
    try:
        principal = current_principal(request)
    except Unauthorized:
        return False
    return ROLE_RANK[principal.role] >= ROLE_RANK["operator"]


def require_sandbox_access(request: Request) -> None:
    """FastAPI dependency: the account's credentials, or a relaydesk operator's API token."""
    settings = get_settings()
    if not (basic_credentials_ok(request, settings) or bearer_operator_ok(request, settings)):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="sandbox access needs the Account SID and auth token (HTTP Basic) "
            "or a relaydesk operator's API token (Bearer)",
            headers={"WWW-Authenticate": 'Basic realm="relaydesk sandbox"'},
        )


SANDBOX_OFF = "the sandbox is off: relaydesk is connected to live Twilio"


async def require_sandbox_mode() -> None:
    """FastAPI dependency of the embedded emulator: 404 once the panel switched to live."""
    # The standalone emulator never mounts this: it has no database to ask.
    if not (await current_account_async()).sandbox:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=SANDBOX_OFF)
