"""The simulated customer phone, plus the emulator's run-time config and reset routes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import Any
from urllib.parse import urljoin

import httpx
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from relaydesk.channels.sandbox.callbacks import TIMEOUT, apost_signed, inbound_params
from relaydesk.channels.sandbox.deps import require_sandbox_access
from relaydesk.channels.sandbox.errors import ApiError
from relaydesk.channels.sandbox.knobs import Knobs, KnobsUpdate, bare_number
from relaydesk.channels.sandbox.lifecycle import default_sender
from relaydesk.channels.sandbox.media import MAX_FILES, Upload
from relaydesk.channels.sandbox.phone_input import (
    MEDIA_FIELD,
    PhoneInputError,
    PhoneMessage,
    check_message,
    form_fields,
    read_uploads,
)
from relaydesk.channels.sandbox.render import message_json
from relaydesk.channels.sandbox.runtime import Emulator, get_emulator
from relaydesk.channels.sandbox.service import create_inbound, create_outbound
from relaydesk.channels.sandbox.store import StoredMessage
from relaydesk.channels.sandbox.twiml import message_replies
from relaydesk.channels.sandbox.validation import CreateRequest
from relaydesk.core import netguard

log = logging.getLogger(__name__)

router = APIRouter(tags=["sandbox: phone"], dependencies=[Depends(require_sandbox_access)])


@router.post(
    "/phone/messages",
    status_code=201,
    responses={
        400: {"description": "The body is not JSON, a form or multipart/form-data"},
        413: {"description": "A file or the whole message is too large"},
        422: {"description": "No sender, no text and no file, or a file of a wrong type"},
    },
)
async def send_from_phone(request: Request) -> JSONResponse:
    """A customer texts us: store it and post Twilio's signed webhook to our inbound URL.

    JSON, or a form; as `multipart/form-data` with files in the field `media`.
    """
    incoming, uploads = await _read_phone_message(request)
    answer = await text_relaydesk(incoming, uploads, api_base=_api_base(request))
    return JSONResponse(answer, status_code=201)


async def text_relaydesk(
    incoming: PhoneMessage, uploads: Sequence[Upload] = (), api_base: str | None = None
) -> dict[str, Any]:
    """Store the customer's message in the emulator and post Twilio's signed webhook.

    Files get media URLs on `api_base` (default: the API base relaydesk uses).
    """
    emu = get_emulator()
    whatsapp = incoming.whatsapp
    from_addr = _on_channel(incoming.from_, whatsapp)
    to_addr = _on_channel(incoming.to or default_sender(emu.settings, whatsapp), whatsapp)
    msg, media = await run_in_threadpool(
        partial(
            create_inbound,
            emu,
            from_addr=from_addr,
            to_addr=to_addr,
            body=incoming.text,
            uploads=uploads,
            api_base=api_base,
        )
    )
    answer: dict[str, Any] = {
        "sid": msg.sid,
        "from": from_addr,
        "to": to_addr,
        "body": msg.body,
        "media": [{"sid": m.sid, "content_type": m.content_type} for m in media],
        "webhook_status": None,
        "replies": [],
    }
    params = inbound_params(
        msg,
        incoming.profile_name,
        [m.content_type for m in media],
        incoming.extra_params(),
    )
    try:
        # relaydesk's own address, allowed by the guard unless misconfigured.
        emu.outbound.check(emu.inbound_url)
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            resp = await apost_signed(client, emu.inbound_url, params, emu.settings.auth_token)
    except netguard.BlockedAddress as exc:
        log.warning("sandbox: inbound webhook refused: %s", exc)
        answer["webhook_error"] = f"refused: {exc}"
        return answer
    except httpx.HTTPError as exc:
        log.warning("sandbox: inbound webhook %s failed: %s", emu.inbound_url, exc)
        answer["webhook_error"] = f"{exc.__class__.__name__}: {exc}"
        return answer
    answer["webhook_status"] = resp.status_code
    if resp.is_success and "xml" in resp.headers.get("content-type", ""):
        replies = await run_in_threadpool(_send_replies, emu, msg, resp.text)
        answer["replies"] = [r.sid for r in replies]
    return answer


@router.get("/phone/messages")
async def phone_messages(number: str | None = None) -> dict[str, Any]:
    """What the simulated phone `number` sent and received, oldest first."""
    emu = get_emulator()
    bare = bare_number(number.strip()) if number else None
    found = await run_in_threadpool(emu.store.for_number, bare)
    return {"number": bare, "messages": [message_json(m) for m in found]}


@router.get("/config")
async def read_config() -> Knobs:
    """The current load knobs and failure rules."""
    return get_emulator().control.knobs


@router.put("/config")
async def update_config(change: KnobsUpdate) -> Knobs:
    """Override knobs at run time; `failure_rules`, when given, replaces the whole table."""
    return get_emulator().control.update(change)


@router.post("/reset", status_code=204)
async def reset() -> Response:
    """Forget all emulator messages and pending callbacks, restore default knobs (tests)."""
    await run_in_threadpool(get_emulator().reset)
    return Response(status_code=204)


async def _read_phone_message(request: Request) -> tuple[PhoneMessage, list[Upload]]:
    """JSON or form body → PhoneMessage and files, with FastAPI's usual 422 on bad input."""
    uploads: list[Upload] = []
    try:
        if request.headers.get("content-type", "").startswith("application/json"):
            data: Any = await request.json()
        else:
            # One over the limit parses, so the answer can say what the limit is.
            form = await request.form(max_files=MAX_FILES + 1)
            data = form_fields(form)
            uploads = await read_uploads(form.getlist(MEDIA_FIELD))
        message = PhoneMessage.model_validate(data)
        check_message(message, uploads)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None
    except PhoneInputError as exc:
        raise HTTPException(exc.status, detail=exc.message) from None
    return message, uploads


def _api_base(request: Request) -> str | None:
    """Where media URLs point: a standalone emulator serves Twilio's paths at its root."""
    if getattr(request.app.state, "standalone_emulator", False):
        settings = get_emulator().settings
        return settings.twilio_api_base_url or str(request.base_url).rstrip("/")
    return None


def _on_channel(address: str, whatsapp: bool) -> str:
    bare = address.removeprefix("whatsapp:")
    return f"whatsapp:{bare}" if whatsapp else bare


def _send_replies(emu: Emulator, inbound: StoredMessage, twiml: str) -> list[StoredMessage]:
    """Turn `<Message>` verbs into outbound replies, as Twilio does with a TwiML answer."""
    sent = []
    for reply in message_replies(twiml):
        if not (reply.body or reply.media):
            continue
        callback = (
            urljoin(emu.inbound_url, reply.status_callback) if reply.status_callback else None
        )
        req = CreateRequest(
            to=reply.to or inbound.from_addr or "",
            from_=reply.from_ or inbound.to_addr,
            messaging_service_sid=None,
            body=reply.body,
            media_urls=reply.media,
            content_sid=None,
            content_variables=None,
            status_callback=callback,
        )
        try:
            sent.append(create_outbound(emu, req, direction="outbound-reply"))
        except ApiError as exc:
            # Twilio drops a <Message> it cannot send and reports it in its debugger.
            log.warning("sandbox: TwiML reply to %s not sent: %s", req.to, exc.message)
    return sent
