"""Keyset pagination: opaque cursors that carry the last row's sort key."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from relaydesk.core.errors import Invalid
from relaydesk.core.i18n import N_


def encode_cursor(*parts: Any) -> str:
    """An opaque cursor for keyset pagination."""
    text = "|".join(p.isoformat() if isinstance(p, datetime) else str(p) for p in parts)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, count: int) -> list[str]:
    """The parts of a cursor made by encode_cursor; Invalid when it was tampered with."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise Invalid(
            N_("The cursor is not one this API gave out"), params={}, field="cursor"
        ) from None
    parts = text.split("|")
    if len(parts) != count:
        raise Invalid(N_("The cursor is not one this API gave out"), params={}, field="cursor")
    return parts


def cursor_id(cursor: str, field: str = "cursor") -> int:
    """The message/entry id inside a one-part cursor; Invalid when it was tampered with."""
    (value,) = decode_cursor(cursor, 1)
    if not value.isdigit():
        raise Invalid(N_("The cursor is not one this API gave out"), params={}, field=field)
    return int(value)
