"""Numbers pasted the way people have them: split, normalised, de-duplicated."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from relaydesk.channels.twilio.numbers import InvalidNumber, parse_address

# Commas, semicolons, tabs and line breaks always separate; spaces separate only where
# they do not sit inside one number ("+48 600 100 200" is one number).
_HARD = re.compile(r"[,;\t\r\n]+")
MAX_PARTS = 6  # "+48 600 100 200" is four parts
_TOKEN = re.compile(r"(?:whatsapp:)?\+?[\d()\-./ \u00a0]*\d|\S+", re.IGNORECASE)


@dataclass
class Parsed:
    """The outcome of reading a pasted list."""

    numbers: list[tuple[str, str]] = field(default_factory=list)  # (input, address)
    total: int = 0
    duplicates: int = 0
    invalid: list[dict[str, str]] = field(default_factory=list)


def _pieces(text: str) -> list[str]:
    out: list[str] = []
    for chunk in _HARD.split(text):
        chunk = chunk.strip()
        if not chunk:
            continue
        for token in _TOKEN.findall(chunk):
            token = token.strip()
            if token:
                out.append(token)
    return out


def _split_run(piece: str, region: str, result: Parsed) -> list[tuple[str, str]]:
    """Read space-separated parts greedily: the longest run of parts that is one number."""
    parts = piece.split()
    found: list[tuple[str, str]] = []
    i = 0
    while i < len(parts):
        for j in range(min(len(parts), i + MAX_PARTS), i, -1):
            raw = " ".join(parts[i:j])
            try:
                found.append((raw, parse_address(raw, region).twilio))
            except InvalidNumber as exc:
                if j == i + 1:
                    result.total += 1
                    result.invalid.append({"input": raw[:64], "reason": exc.reason})
                    i = j
                continue
            i = j
            break
    return found


def parse_numbers(text: str, region: str) -> Parsed:
    """Every entry of `text`, normalised to E.164 (or `whatsapp:+…`), duplicates removed.

    Parts separated by single spaces are read as one number when they make one
    ("600 100 200"); otherwise the longest runs of parts that are numbers are taken.
    """
    result = Parsed()
    seen: set[str] = set()
    for piece in _pieces(text):
        try:
            resolved = [(piece, parse_address(piece, region).twilio)]
        except InvalidNumber as exc:
            if len(piece.split()) > 1:
                resolved = _split_run(piece, region, result)
            else:
                result.total += 1
                result.invalid.append({"input": piece[:64], "reason": exc.reason})
                continue
        for raw, address_text in resolved:
            result.total += 1
            if address_text in seen:
                result.duplicates += 1
                continue
            seen.add(address_text)
            result.numbers.append((raw[:64], address_text))
    return result
