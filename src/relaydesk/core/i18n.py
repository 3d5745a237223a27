"""Panel languages: Babel catalogs read from `translations/`, chosen per request."""

from __future__ import annotations

import io
from collections.abc import Mapping
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
