"""Names people type that end up in file names and headers: accents, download headers.

`content_disposition` builds the header of every download (RFC 6266): `filename="…"`
carries an ASCII stand-in for clients that know nothing else, `filename*=UTF-8''…` the
exact name, percent-encoded (RFC 8187), which every current browser prefers. Built
here once, so no route puts a name into a header itself: a quote cannot add a
parameter, CR, LF or NUL cannot split or break the header, and a letter outside
Latin-1 cannot make the response fail.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

MAX_FILENAME = 200  # characters; a longer name is cut, its extension kept
FALLBACK_FILENAME = "download"
# Letters without a Unicode decomposition: NFKD alone would drop them instead of
# turning "Łódź" into "Lodz".
_TRANSLITERATE = str.maketrans({"ł": "l", "Ł": "L", "ß": "ss", "ø": "o", "Ø": "O", "đ": "d"})
# A browser would make folders of these, or refuse the name.
_SEPARATORS = str.maketrans({"/": "_", "\\": "_"})


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
