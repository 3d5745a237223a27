"""Jinja2 rendering for the panel: one environment, per-request language and user."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from functools import cache, partial
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from relaydesk import __version__
from relaydesk.auth.models import ROLE_RANK
from relaydesk.auth.sessions import SignedIn
from relaydesk.core import domains
from relaydesk.core.i18n import LANGUAGES, translate_stored, translations
from relaydesk.core.ondisk import human_size
from relaydesk.web.context import environment_mode, request_language, signed_in
from relaydesk.web.labels import labels

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"

# Later domains add to every page's header when their views load (the inbox's business
# hours): a HeaderPart gets the page's language and returns HTML, or "" for nothing.
HeaderPart = Callable[[str], Markup]
_header_parts: list[HeaderPart] = []


def header_part(func: HeaderPart) -> HeaderPart:
    """Register something a later domain shows in the header of every signed-in page."""
    _header_parts.append(func)
    return func


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def _when(value: datetime | None) -> Markup:
    """A <time> the browser rewrites as hour and date in the viewer's time zone."""
    if value is None:
        return Markup("")
    return Markup('<time datetime="{}" data-local="datetime">{} UTC</time>').format(
        value.isoformat(), value.strftime("%Y-%m-%d %H:%M")
    )


def _static_version() -> str:
    """Changes whenever a static file does, so browsers never keep a stale script."""
    newest = max((p.stat().st_mtime_ns for p in STATIC_DIR.rglob("*") if p.is_file()), default=0)
    return f"{__version__}-{newest % 10**8}"


@cache
def environment() -> Environment:
    """The panel's Jinja2 environment (autoescaping on, i18n through `_`)."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["iso"] = _iso
    env.filters["when"] = _when
    env.filters["tojson_attr"] = lambda v: Markup(json.dumps(v, ensure_ascii=False))  # noqa: S704
    env.globals["LANGUAGES"] = LANGUAGES
    env.globals["nav_tabs"] = domains.tabs()
    env.globals["ROLE_RANK"] = ROLE_RANK
    env.globals["human_size"] = human_size
    env.globals["static_version"] = _static_version()
    env.globals["header_parts"] = _header_parts
    return env


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    user: SignedIn | None = None,
) -> HTMLResponse:
    """Render a page or fragment in the request's language."""
    lang = request_language(request, user)
    catalog = translations(lang)
    user = user or signed_in(request)
    page = (
        environment()
        .get_template(template)
        .render(
            request=request,
            user=user,
            lang=lang,
            mode=environment_mode(),
            csrf_token=user.csrf_token if user else "",
            _=catalog.gettext,
            gettext=catalog.gettext,
            ngettext=catalog.ngettext,
            labels=labels(lang),
            # Stored English notes (job progress, refusals kept on rows) in the viewer's language.
            said=partial(translate_stored, lang),
            **(context or {}),
        )
    )
    return HTMLResponse(page, status_code=status_code, headers=headers)
