"""SMS segment counting (GSM-7 or UCS-2) as Twilio bills it."""

from __future__ import annotations

import math

# GSM 03.38 basic character set (the escape code itself is not a character).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table characters: an escape plus the character, so two septets each.
_GSM_EXTENDED = frozenset("\f^{}\\[~]|€")


def count_segments(body: str) -> int:
    """How many SMS segments `body` needs: GSM-7 160/153 septets, otherwise UCS-2 70/67."""
    septets = 0
    for char in body:
        if char in _GSM_BASIC:
            septets += 1
        elif char in _GSM_EXTENDED:
            septets += 2
        else:
            return _ucs2_segments(body)
    return _split(septets, single=160, multi=153)


def _ucs2_segments(body: str) -> int:
    # UCS-2 on the wire is UTF-16: characters outside the BMP (emoji) take two units.
    units = len(body.encode("utf-16-le")) // 2
    return _split(units, single=70, multi=67)


def _split(units: int, *, single: int, multi: int) -> int:
    if units <= single:
        return 1
    return math.ceil(units / multi)
