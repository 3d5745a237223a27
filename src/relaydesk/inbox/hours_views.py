"""The Business hours page (admins edit, everyone reads) and the state in every page's header."""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, available_timezones

from babel.dates import format_date, get_day_names
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import FormData

from relaydesk.core.db import session_scope, utcnow
from relaydesk.core.errors import Invalid, RelaydeskError
from relaydesk.core.i18n import N_, translations
from relaydesk.inbox import hours, hours_settings
from relaydesk.messaging.views import segment_rules
from relaydesk.web.context import request_language
from relaydesk.web.deps import PanelAdmin, PanelViewer
from relaydesk.web.templating import header_part, render

router = APIRouter(include_in_schema=False)

FORM_SLOTS = 2  # interval rows a day shows in the form (more when the API stored more)
_HOLIDAY_SEPARATORS = re.compile(r"[\s,;]+")


async def _read_form(request: Request) -> FormData:
    return await request.form()


FormDep = Annotated[FormData, Depends(_read_form)]


@cache
def _zones() -> list[str]:
    """The IANA zones a person may pick (the tz database's own names, no legacy aliases)."""
    zones = {z for z in available_timezones() if "/" in z and not z.startswith("Etc/")}
    return sorted(zones | {"UTC"})


def _context(lang: str, saved: bool = False) -> dict[str, Any]:
    with session_scope(write=False) as session:
        config = hours_settings.read(session)
    now = hours.state(config, utcnow())
    return {
        "tab": "inbox",
        "hours": config,
        "state_text": state_text(now, lang),
        "open_now": now.open,
        "slots": [max(FORM_SLOTS, len(day)) for day in config.days],
        "day_names": [get_day_names("wide", locale=lang)[day] for day in range(7)],
        "zones": _zones(),
        "segment_rules": segment_rules(),
        "saved": saved,
    }


@router.get("/inbox/hours", response_class=HTMLResponse)
def hours_page(request: Request, user: PanelViewer) -> Response:
    """Business hours, the out-of-office answer and how it fits the automatic answers."""
    lang = request_language(request, user)
    return render(request, "inbox/hours.html", _context(lang), user=user)


@router.post("/inbox/hours", response_class=HTMLResponse)
def save_hours(request: Request, user: PanelAdmin, form: FormDep) -> Response:
    """Replace the business hours with the form's (checked as the API checks them)."""
    days = [_day_from_form(form, day) for day in range(7)]
    holidays = [d for d in _HOLIDAY_SEPARATORS.split(_text(form, "holidays")) if d]
    config = hours.BusinessHours(
        enabled=form.get("enabled") == "on",
        timezone=_text(form, "timezone").strip(),
        days=days,
        holidays=holidays,
        message=_text(form, "message").replace("\r\n", "\n"),
    )
    with session_scope() as session:
        hours_settings.save(session, config, user.actor)
    lang = request_language(request, user)
    return render(request, "inbox/_hours.html", _context(lang, saved=True), user=user)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _day_from_form(form: FormData, day: int) -> list[list[str]]:
    """One weekday's filled-in rows; a closing time of 00:00 is midnight (24:00)."""
    intervals = []
    for slot in range(hours.MAX_INTERVALS):
        opens = _text(form, f"open-{day}-{slot}").strip()[:20]
        closes = _text(form, f"close-{day}-{slot}").strip()[:20]
        if not opens and not closes:
            continue
        if not opens or not closes:
            raise Invalid(
                N_("%(day)s: an opening interval needs an opening and a closing time"),
                params={"day": hours.WEEKDAYS[day]},
                field="days",
            )
        intervals.append([opens, "24:00" if closes == "00:00" else closes])
    return intervals


# --- The header ----------------------------------------------------------------------


def _when(at: datetime, now: datetime, tz: ZoneInfo, lang: str) -> str:
    """A coming change in the business's time zone: "17:00", "Mon 09:00" or "2 Jan 09:00"."""
    local, today = at.astimezone(tz), now.astimezone(tz).date()
    clock = f"{local:%H:%M}"
    if local.date() == today:
        return clock
    if (local.date() - today).days < 7:
        return f"{format_date(local.date(), 'EEE', locale=lang)} {clock}"
    return f"{format_date(local.date(), 'd MMM', locale=lang)} {clock}"


def state_text(now: hours.State, lang: str) -> str:
    """ "Open · closes 17:00" or "Closed · opens Mon 09:00", in `lang`."""
    _ = translations(lang).gettext
    at = utcnow()
    if now.open:
        if now.change is None:
            return _("Open now")
        return _("Open · closes %(time)s") % {"time": _when(now.change, at, now.tz, lang)}
    if now.change is None:
        return _("Closed now")
    return _("Closed · opens %(time)s") % {"time": _when(now.change, at, now.tz, lang)}


@header_part
def hours_badge(lang: str) -> Markup:
    """Open or closed now, when business hours are on (one cached settings read)."""
    try:
        config = hours_settings.current()
    except (SQLAlchemyError, RelaydeskError):
        return Markup("")  # the page (maybe the error page saying so) renders without it
    if not config.enabled:
        return Markup("")
    now = hours.state(config, utcnow())
    title = translations(lang).gettext("Business hours (%(zone)s)") % {"zone": config.timezone}
    return Markup(
        '<a class="hours-badge hours-{}" href="/inbox/hours" title="{}" data-hours-state="{}">'
        "{}</a>"
    ).format(
        "open" if now.open else "closed",
        title,
        "open" if now.open else "closed",
        state_text(now, lang),
    )
