"""Panel languages: Babel catalogs read from `translations/`, chosen per request."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LANGUAGES = {"en": "English", "pl": "Polski"}
DEFAULT_LANGUAGE = "en"
CATALOG_DIR = Path(__file__).resolve().parents[1] / "translations"
DOMAIN = "messages"


@cache
def translations(language: str) -> NullTranslations:
    """The catalog of one language, compiled in memory from its .po file."""
    path = CATALOG_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if language not in LANGUAGES or not path.exists():
        return NullTranslations()
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def N_(message: str) -> str:  # the name pybabel looks for
    """Mark a message for the catalogs without translating it here (done where shown)."""
    return message


def localized(language: str, template: str, params: Mapping[str, Any]) -> str:
    """A template from the code in `language`, its values translated where they can be."""
    _ = translations(language).gettext

    def value(item: Any) -> Any:
        if isinstance(item, list | tuple):
            return ", ".join(_(str(v)) for v in item)
        return _(item) if isinstance(item, str) and item else item

    return _(template) % {key: value(item) for key, item in params.items()}


# --- English stored earlier, shown later ---------------------------------------------
#
# Notes kept in rows and job results (a job's progress and failure, a voice note's
# refusal, an automatic answer's detail) are English, as the API answers them. The panel
# shows them in the viewer's language by recognising the catalog entry each was made from:
# an N_ template filled in with values reads back into the template and its values.

_PLACEHOLDER = re.compile(r"%\((\w+)\)([sd])|%%")
# A template needs this much fixed text to be recognised: "%(reason)s" alone is anything.
_MIN_LITERAL = 8
_MAX_DEPTH = 3


@dataclass(frozen=True)
class _Shape:
    pattern: re.Pattern[str]
    template: str
    numbers: frozenset[str]  # %(name)d values, given to the template as integers


@cache
def _shapes(language: str) -> tuple[_Shape, ...]:
    """The catalog's templates with values, most fixed text first."""
    path = CATALOG_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if language not in LANGUAGES or not path.exists():
        return ()
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    found: list[tuple[int, _Shape]] = []
    for entry in catalog:
        template = entry.id
        if not isinstance(template, str) or "%(" not in template or not entry.string:
            continue
        parts, numbers, literal, position = [], set(), 0, 0
        seen: set[str] = set()
        for match in _PLACEHOLDER.finditer(template):
            fixed = template[position : match.start()]
            literal += len(fixed.strip())
            parts.append(re.escape(fixed))
            position = match.end()
            if match.group(0) == "%%":
                parts.append("%")
                continue
            name, kind = match.group(1), match.group(2)
            if name in seen:
                parts.append(f"(?P={name})")
                continue
            seen.add(name)
            if kind == "d":
                numbers.add(name)
                parts.append(rf"(?P<{name}>-?\d+)")
            else:
                parts.append(rf"(?P<{name}>.+?)")
        tail = template[position:]
        literal += len(tail.strip())
        parts.append(re.escape(tail))
        if literal < _MIN_LITERAL:
            continue
        shape = _Shape(re.compile("".join(parts), re.S), template, frozenset(numbers))
        found.append((literal, shape))
    found.sort(key=lambda item: -item[0])
    return tuple(shape for _, shape in found)


def translate_stored(language: str, text: str | None, _depth: int = 0) -> str:
    """English text made from the catalogs, in `language` (unchanged when not recognised).

    An exact catalog entry is translated as it is; a filled-in template is matched back to
    its template, whose values are translated the same way (a refusal quoting another).
    """
    if not text:
        return text or ""
    if language == DEFAULT_LANGUAGE or language not in LANGUAGES:
        return text
    catalog = translations(language)
    exact = catalog.gettext(text)
    if exact != text:
        return exact
    if _depth >= _MAX_DEPTH:
        return text
    for shape in _shapes(language):
        match = shape.pattern.fullmatch(text)
        if match is None:
            continue
        values: dict[str, Any] = {}
        for name, value in match.groupdict().items():
            values[name] = (
                int(value) if name in shape.numbers else _value(language, value, _depth + 1)
            )
        try:
            return catalog.gettext(shape.template) % values
        except (KeyError, ValueError, TypeError):
            return text  # a translation whose placeholders differ: keep the English
    return text


def _value(language: str, value: str, depth: int) -> str:
    """A value inside a recognised template: a sentence of the catalogs, else as it is.

    A single word is left alone: a value such as a name or a file ("Help", "Done") must
    not be translated by accident.
    """
    if " " not in value.strip():
        return value
    return translate_stored(language, value, depth)


def from_accept_language(header: str | None) -> str:
    """The best supported language for an Accept-Language header."""
    choices: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            choices.append((-quality, position, primary))
    return min(choices)[2] if choices else DEFAULT_LANGUAGE


def pick_language(saved: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The user's saved choice, else the cookie's, else the browser's language."""
    for choice in (saved, cookie):
        if choice in LANGUAGES:
            return choice
    return from_accept_language(accept_language)
