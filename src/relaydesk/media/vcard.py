"""A small vCard reader for the chat: each card's name and phone numbers, nothing else.

Customers share contacts as vCard files (2.1, 3.0 and 4.0 all occur). Only FN, N and
TEL are read; the text is never interpreted beyond splitting it, so a hostile file can
at worst show odd text (which the templates escape).
"""

from __future__ import annotations

import quopri
import re
from dataclasses import dataclass, field

MAX_CARDS = 20
MAX_PHONES = 10
MAX_VALUE = 200
# A line that starts with a space or a tab continues the previous one (RFC 6350 3.2).
_FOLD = re.compile(r"\r?\n[ \t]")
_ESCAPES = {"n": "\n", "N": "\n", ",": ",", ";": ";", "\\": "\\"}


@dataclass
class Card:
    """One contact: the name to show and its phone numbers."""

    name: str = ""
    phones: list[str] = field(default_factory=list)


def parse(data: bytes) -> list[Card]:
    """The cards in a vCard file (several may follow one another); [] when there are none."""
    text = _FOLD.sub("", data.decode("utf-8", errors="replace"))
    cards: list[Card] = []
    current: Card | None = None
    family_given = ""
    pending = ""  # a quoted-printable line ending in "=" continues on the next line
    for raw_line in text.splitlines():
        line = pending + raw_line
        pending = ""
        if "QUOTED-PRINTABLE" in line.upper().split(":", 1)[0] and line.endswith("="):
            pending = line[:-1]
            continue
        name, params, value = _split(line)
        if name == "BEGIN" and value.upper() == "VCARD":
            current, family_given = Card(), ""
        elif name == "END" and current is not None:
            current.name = current.name or family_given
            if current.name or current.phones:
                cards.append(current)
            current = None
            if len(cards) >= MAX_CARDS:
                break
        elif current is None:
            continue
        elif name == "FN":
            current.name = _text(value, params)
        elif name == "N":
            family_given = _name_from_parts(_text(value, params, unescape=False))
        elif name == "TEL" and len(current.phones) < MAX_PHONES:
            phone = _text(value, params).removeprefix("tel:").strip()
            if phone:
                current.phones.append(phone)
    return cards


def _split(line: str) -> tuple[str, list[str], str]:
    """'item1.TEL;TYPE=CELL:+48 600' → ('TEL', ['TYPE=CELL'], '+48 600')."""
    head, sep, value = line.partition(":")
    if not sep:
        return "", [], ""
    name, *params = head.split(";")
    return name.rsplit(".", 1)[-1].strip().upper(), [p.upper() for p in params], value


def _text(value: str, params: list[str], *, unescape: bool = True) -> str:
    if "ENCODING=QUOTED-PRINTABLE" in params or "QUOTED-PRINTABLE" in params:
        value = quopri.decodestring(value.encode("latin-1", errors="replace")).decode(
            "utf-8", errors="replace"
        )
    if unescape:
        value = _unescape(value)
    return value.strip()[:MAX_VALUE]


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), value)


def _name_from_parts(value: str) -> str:
    """N is 'Family;Given;Additional;Prefix;Suffix'; shown as 'Prefix Given Additional Family'."""
    parts = [_unescape(p).strip() for p in re.split(r"(?<!\\);", value)] + [""] * 5
    family, given, additional, prefix, suffix = parts[:5]
    words = [prefix, given, additional, family, suffix]
    return " ".join(w for w in words if w)[:MAX_VALUE]
