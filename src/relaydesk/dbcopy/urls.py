"""The target URL and passwords: read strictly, shown masked.

`target_url` accepts only a PostgreSQL URL naming a database and turns it into a psycopg
one; its errors never echo what was written after the scheme. `shown` prints a URL with
its password as ***, and `Masker` replaces every spelling of the given URLs' passwords
(as written, percent-encoded or decoded) in any text, a database's error included.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote, quote_plus, unquote, urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from relaydesk.dbcopy.report import CopyError

POSTGRESQL_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
URL_EXAMPLE = "postgresql://user:password@host:5432/database"
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,30}")


def target_url(raw: str) -> URL:
    """The target as a psycopg URL; CopyError (echoing no password) when it is not one."""
    text = raw.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in POSTGRESQL_SCHEMES:
        named = f"'{scheme}://…' is not one" if SCHEME.fullmatch(scheme) else "got something else"
        raise CopyError(f"the target must be a PostgreSQL URL, {URL_EXAMPLE}; {named}")
    try:
        url = make_url("postgresql+psycopg://" + rest)
    except (ArgumentError, ValueError):
        raise CopyError(f"the target URL cannot be read; write it as {URL_EXAMPLE}") from None
    if not url.database:
        raise CopyError(f"name the target database in the URL: {URL_EXAMPLE}")
    return url


def shown(url: URL) -> str:
    """A URL fit to print: its password as ***."""
    return url.render_as_string(hide_password=True)


class Masker:
    """Replaces every form of the given URLs' passwords in a text with ***."""

    def __init__(self, *urls: URL, raw: Sequence[str] = ()) -> None:
        secrets: set[str] = set()
        for url in urls:
            if url.password:
                password = str(url.password)
                secrets |= {
                    password,
                    quote(password),
                    quote(password, safe=""),
                    quote_plus(password),
                }
        for text in raw:
            try:
                written = urlsplit(text.strip()).password
            except ValueError:
                written = None
            if written:
                secrets |= {written, unquote(written)}
        self._secrets = sorted((s for s in secrets if s), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text
