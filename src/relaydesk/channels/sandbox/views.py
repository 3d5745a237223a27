"""The sandbox phone page: play a customer, text relaydesk, read what it answers."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from relaydesk.channels.sandbox.knobs import bare_number
from relaydesk.channels.sandbox.phone import text_relaydesk
from relaydesk.channels.sandbox.phone_input import (
    PhoneInputError,
    PhoneMessage,
    check_message,
    read_uploads,
)
from relaydesk.channels.sandbox.phone_media import attachments, with_attachments
from relaydesk.channels.sandbox.render import message_json
from relaydesk.channels.sandbox.runtime import get_emulator
from relaydesk.channels.sandbox.validation import valid_phone
from relaydesk.contacts.service import participant_number
from relaydesk.core.errors import Invalid, NotFound
from relaydesk.core.i18n import N_
from relaydesk.web.context import environment_mode
from relaydesk.web.deps import PanelOperator
from relaydesk.web.templating import render

router = APIRouter(include_in_schema=False)

Number = Annotated[str | None, Query(max_length=40)]


def _require_sandbox() -> None:
    if environment_mode() != "sandbox":
        raise NotFound(N_("The sandbox phone exists only in sandbox mode"), params={})


def _number(raw: str | None) -> str:
    if not raw:
        return "+48600" + f"{secrets.randbelow(1_000_000):06d}"
    value = raw.strip().removeprefix("whatsapp:")
    if not valid_phone(value):
        # Written the way people paste numbers ("+48 600 700 800", "600700800").
        value = participant_number(value)
    return value


async def _phone_messages(number: str) -> list[dict[str, Any]]:
    emu = get_emulator()
    found = await run_in_threadpool(emu.store.for_number, bare_number(number))
    shown = await attachments(emu, found)
    return [with_attachments(message_json(m), shown) for m in found]


@router.get("/sandbox-phone", response_class=HTMLResponse)
async def phone_page(request: Request, user: PanelOperator, number: Number = None) -> Response:
    """The simulated phone, on a number chosen at random unless one is given."""
    _require_sandbox()
    chosen = _number(number)
    context = {"tab": "sandbox", "number": chosen, "messages": await _phone_messages(chosen)}
    return render(request, "sandbox/phone.html", context, user=user)


@router.get("/sandbox-phone/screen", response_class=HTMLResponse)
async def phone_screen(request: Request, user: PanelOperator, number: Number = None) -> Response:
    """The phone's conversation alone (reloaded live)."""
    _require_sandbox()
    chosen = _number(number)
    context = {"number": chosen, "messages": await _phone_messages(chosen)}
    return render(request, "sandbox/_screen.html", context, user=user)


@router.post("/sandbox-phone/send", response_class=HTMLResponse)
async def phone_send(
    request: Request,
    user: PanelOperator,
    number: Annotated[str, Form(max_length=40)],
    body: Annotated[str, Form(max_length=1600)] = "",
    channel: Annotated[str, Form(pattern="^(sms|whatsapp)$")] = "sms",
    profile_name: Annotated[str, Form(max_length=100)] = "",
    media: Annotated[list[UploadFile] | None, File()] = None,
) -> Response:
    """Text relaydesk from the simulated phone, through the signed webhook path."""
    _require_sandbox()
    chosen = _number(number)
    sender = f"whatsapp:{chosen}" if channel == "whatsapp" else chosen
    incoming = PhoneMessage.model_validate(
        {"from": sender, "body": body, "profile_name": profile_name.strip() or None}
    )
    try:
        uploads = await read_uploads(media or [])
        check_message(incoming, uploads)
    except PhoneInputError as exc:
        raise Invalid(exc.template, params=exc.params, field=exc.field) from None
    answer = await text_relaydesk(incoming, uploads)
    context = {"number": chosen, "messages": await _phone_messages(chosen), "answer": answer}
    return render(request, "sandbox/_screen.html", context, user=user)
