"""Panel fragment of the daily digests: the recipients manager inside the News tab.

The News page loads `GET /news/recipients` into its own section; every action answers
with the whole fragment again (and a notice), so the list, next send times and outcomes
stay current without a page reload.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any
from zoneinfo import available_timezones

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from relaydesk.auth.sessions import SignedIn
from relaydesk.core.db import session_scope, utcnow
from relaydesk.deps import Id
from relaydesk.digests import service
from relaydesk.digests.schedule import DEFAULT_TIMEZONE
from relaydesk.digests.schemas import MAX_PROMPT
from relaydesk.web.deps import PanelOperator, PanelViewer
from relaydesk.web.templating import render

router = APIRouter(include_in_schema=False)

Short = Annotated[str, Form(max_length=100)]


@cache
def _zones() -> list[str]:
    """The IANA zones a person may pick (the tz database's own names, no legacy aliases)."""
    return sorted(z for z in available_timezones() if "/" in z and not z.startswith("Etc/"))


def _fragment(
    request: Request, user: SignedIn, notice: str | None = None, phone: str | None = None
) -> Response:
    now = utcnow()
    with session_scope(write=False) as session:
        rows = [service.view(r, now) for r in service.list_recipients(session)]
    context = {
        "recipients": rows,
        "zones": _zones(),
        "default_zone": DEFAULT_TIMEZONE,
        "notice": notice,
        "notice_phone": phone,
    }
    return render(request, "news/_recipients.html", context, user=user)


@router.get("/news/recipients", response_class=HTMLResponse)
def recipients_fragment(request: Request, user: PanelViewer) -> Response:
    """The recipients manager: the form (operators), the list with next and last digests."""
    return _fragment(request, user)


@router.post("/news/recipients", response_class=HTMLResponse)
def create_recipient(
    request: Request,
    user: PanelOperator,
    phone: Annotated[str, Form(max_length=64)] = "",
    send_time: Annotated[str, Form(max_length=8)] = "",
    timezone: Short = DEFAULT_TIMEZONE,
    mode: Annotated[str, Form(max_length=20)] = "all_categories",
    prompt: Annotated[str, Form(max_length=MAX_PROMPT * 2)] = "",
) -> Response:
    """Add a recipient; errors come back as a notice and the form keeps what was typed."""
    fields = service.clean(phone, send_time, timezone, mode, prompt)
    with session_scope() as session:
        service.create(session, fields, user.actor)
    return _fragment(request, user, "created", fields.phone)


@router.post("/news/recipients/{recipient_id}/toggle", response_class=HTMLResponse)
def toggle_recipient(request: Request, recipient_id: Id, user: PanelOperator) -> Response:
    """Enable or disable the recipient's daily digest."""
    with session_scope() as session:
        recipient = service.toggle(session, recipient_id, user.actor)
        state, phone = ("enabled" if recipient.enabled else "disabled"), recipient.phone
    return _fragment(request, user, state, phone)


@router.post("/news/recipients/{recipient_id}/delete", response_class=HTMLResponse)
def delete_recipient(request: Request, recipient_id: Id, user: PanelOperator) -> Response:
    """Delete a recipient (the browser asks to confirm first)."""
    with session_scope() as session:
        phone = service.get(session, recipient_id).phone
        service.delete_recipient(session, recipient_id, user.actor)
    return _fragment(request, user, "deleted", phone)


@router.post("/news/recipients/{recipient_id}/test", response_class=HTMLResponse)
def test_recipient(request: Request, recipient_id: Id, user: PanelOperator) -> Response:
    """The digest the recipient would get now, with its segments and sources; not sent."""
    digest = service.preview(recipient_id)
    context: dict[str, Any] = {"digest": digest, "recipient_id": recipient_id}
    return render(request, "news/_digest_preview.html", context, user=user)


@router.post("/news/recipients/{recipient_id}/send", response_class=HTMLResponse)
def send_recipient(request: Request, recipient_id: Id, user: PanelOperator) -> Response:
    """Send a digest now (asked to confirm first); the scheduled one still follows."""
    service.send_now(recipient_id, user.actor)
    with session_scope(write=False) as session:
        phone = service.get(session, recipient_id).phone
    return _fragment(request, user, "sent", phone)
