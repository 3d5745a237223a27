"""SMS segment counting: GSM-7 (160/153) or UCS-2 (70/67), as Twilio bills."""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# These need an escape character, so each counts as two septets.
GSM7_EXTENSION = set("\f^{}\\[~]|€")


@dataclass(frozen=True)
class SegmentInfo:
    """How a body will be encoded and billed."""

    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int
    per_segment: int
    non_gsm_chars: tuple[str, ...]


def count_segments(body: str) -> SegmentInfo:
    """Encoding and number of segments for an SMS body."""
    non_gsm = tuple(
        dict.fromkeys(ch for ch in body if ch not in GSM7_BASIC and ch not in GSM7_EXTENSION)
    )
    if not non_gsm:
        units = sum(2 if ch in GSM7_EXTENSION else 1 for ch in body)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    if units <= single:
        return SegmentInfo(encoding, units, 1, single, non_gsm)
    segments = -(-units // multi)
    return SegmentInfo(encoding, units, segments, multi, non_gsm)
