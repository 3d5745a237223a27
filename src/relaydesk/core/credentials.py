"""API keys and tokens as HTTP headers can carry them.

A key is sent in a header (`Authorization: Bearer …`, `xi-api-key: …`), and a header
holds printable ASCII only. A key pasted with a stray letter, a non-breaking space or a
line break is refused when it is saved (422); one stored before that check is refused
when it is used, with a message that says to save it again, instead of a failed request.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from relaydesk.core.i18n import N_

MAX_KEY = 500
# Marked for the catalogs: shown inside other messages, which translate it with them.
PROBLEM = N_(
    "an API key is printable ASCII without spaces; check for a pasted line break, a space "
    "or a letter that is not part of the key"
)


def header_safe(value: str) -> bool:
    """True when `value` can be sent as (part of) an HTTP header value."""
    return all(33 <= ord(ch) <= 126 for ch in value)


def _checked(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if value and not header_safe(value):
        raise ValueError(PROBLEM)
    return value


# A write-only key field: None and "" keep their meaning (keep / clear) in each schema.
KeyField = Annotated[str | None, AfterValidator(_checked)]
