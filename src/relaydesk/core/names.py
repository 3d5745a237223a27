"""Names people type that end up in file names and headers: accents, download headers.

`content_disposition` builds the header of every download (RFC 6266): `filename="…"`
carries an ASCII stand-in for clients that know nothing else, `filename*=UTF-8''…` the
exact name, percent-encoded (RFC 8187), which every current browser prefers. Built
here once, so no route puts a name into a header itself: a quote cannot add a
parameter, CR, LF or NUL cannot split or break the header, and a letter outside
Latin-1 cannot make the response fail.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from relaydesk.core.errors import Invalid
from relaydesk.core.i18n import N_

MAX_FILENAME = 200  # characters; a longer name is cut, its extension kept
FALLBACK_FILENAME = "download"
# Letters without a Unicode decomposition: NFKD alone would drop them instead of
# turning "Łódź" into "Lodz".
_TRANSLITERATE = str.maketrans({"ł": "l", "Ł": "L", "ß": "ss", "ø": "o", "Ø": "O", "đ": "d"})
# A browser would make folders of these, or refuse the name.
_SEPARATORS = str.maketrans({"/": "_", "\\": "_"})
# A category name (of news and documents) becomes the stem of its files, so it is held
# to a portable file name.
CATEGORY_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def unaccented(text: str) -> str:
    """`text` with accents and Polish letters made plain: 'Łódź Żółć' → 'Lodz Zolc'."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_TRANSLITERATE))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def clean_filename(filename: str) -> str:
    """The name as offered: one path segment, printable, at most MAX_FILENAME characters."""
    text = filename.encode("utf-8", "replace").decode("utf-8").translate(_SEPARATORS)
    text = " ".join("".join(ch for ch in text if ch.isprintable()).split())
    if len(text) > MAX_FILENAME:
        _, dot, extension = text.rpartition(".")
        keep = dot + extension if dot and len(extension) <= 10 else ""
        text = text[: MAX_FILENAME - len(keep)] + keep
    return text.strip(" .") or FALLBACK_FILENAME


def content_disposition(filename: str, *, inline: bool = False) -> str:
    """`attachment; filename="<ASCII>"; filename*=UTF-8''<percent-encoded name>`."""
    name = clean_filename(filename)
    # Neither %, which some clients decode in the plain parameter, nor ; which naive
    # parsers take for the end of the parameter.
    plain = "".join(
        ch if ch.isascii() and ch.isprintable() and ch not in '"\\%;' else "_"
        for ch in unaccented(name)
    )
    exact = quote(name, safe="")
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{plain}\"; filename*=UTF-8''{exact}"


def category_slug(name: str) -> str:
    """The file-safe name of a category: 'Poradnik Finansowy' → 'poradnik_finansowy'.

    The one rule for category names, wherever they come from (API bodies, panel forms,
    stored rows): a slug passes through unchanged, so checking a stored name is calling
    this again.
    """
    shown = repr(name.strip()[:80])
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise Invalid(
            N_(
                "category name %(name)s must not contain control characters "
                "(a line break, a tab or a NUL byte)"
            ),
            params={"name": shown},
        )
    text = unaccented(name.strip()).lower()
    slug = re.sub(r"\s+", "_", text)
    if not slug:
        raise Invalid(N_("a category needs a name"), params={})
    if CATEGORY_PATTERN.fullmatch(slug):
        return slug
    bad = sorted({ch for ch in slug if not (ch.isascii() and (ch.isalnum() or ch in "_-"))})
    if bad:
        listed = " ".join(repr(ch) for ch in bad[:10])
        raise Invalid(
            N_(
                "category name %(name)s may contain only letters, digits, spaces, '-' and '_' "
                "(not %(characters)s)"
            ),
            params={"name": shown, "characters": listed},
        )
    if len(slug) > 63:
        raise Invalid(
            N_("category name %(name)s is too long (at most 63 characters)"),
            params={"name": shown},
        )
    raise Invalid(
        N_("category name %(name)s must start with a letter or a digit"), params={"name": shown}
    )
