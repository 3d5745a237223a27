"""The simulated customer phone, plus the emulator's run-time config and reset routes."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urljoin

import httpx
from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from relaydesk.channels.sandbox.callbacks import TIMEOUT, apost_signed, inbound_params
from relaydesk.channels.sandbox.deps import require_sandbox_access
from relaydesk.channels.sandbox.knobs import Knobs, KnobsUpdate, bare_number
from relaydesk.channels.sandbox.lifecycle import default_sender
from relaydesk.channels.sandbox.render import message_json
from relaydesk.channels.sandbox.runtime import Emulator, get_emulator
from relaydesk.channels.sandbox.service import create_inbound, create_outbound
from relaydesk.channels.sandbox.store import StoredMessage
from relaydesk.channels.sandbox.twiml import message_replies
from relaydesk.channels.sandbox.validation import CreateRequest, is_whatsapp, valid_phone

log = logging.getLogger(__name__)

router = APIRouter(tags=["sandbox: phone"], dependencies=[Depends(require_sandbox_access)])


class PhoneMessage(BaseModel):
    """What the simulated customer types: from their number to ours."""

    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    to: str | None = None
    body: str = Field(min_length=1, max_length=1600)
    profile_name: str | None = None

    @field_validator("from_")
    @classmethod
    def _from(cls, value: str) -> str:
        return _checked_phone(value)

    @field_validator("to")
    @classmethod
    def _to(cls, value: str | None) -> str | None:
        return _checked_phone(value) if value and value.strip() else None


def _checked_phone(value: str) -> str:
    value = value.strip()
    if not valid_phone(value):
        raise ValueError("must be an E.164 number such as +48600100200 or whatsapp:+48...")
    return value


@router.post("/phone/messages", status_code=201)
async def send_from_phone(request: Request) -> JSONResponse:
    """A customer texts us: store it and post Twilio's signed webhook to our inbound URL."""
    return JSONResponse(await text_relaydesk(await _read_phone_message(request)), status_code=201)


async def text_relaydesk(incoming: PhoneMessage) -> dict[str, Any]:
    """Store the customer's message in the emulator and post Twilio's signed webhook."""
    emu = get_emulator()
    whatsapp = is_whatsapp(incoming.from_) or is_whatsapp(incoming.to)
    from_addr = _on_channel(incoming.from_, whatsapp)
    to_addr = _on_channel(incoming.to or default_sender(emu.settings, whatsapp), whatsapp)
    msg = await run_in_threadpool(
        create_inbound, emu, from_addr=from_addr, to_addr=to_addr, body=incoming.body
    )
    answer: dict[str, Any] = {
        "sid": msg.sid,
        "from": from_addr,
        "to": to_addr,
        "body": msg.body,
        "webhook_status": None,
        "replies": [],
    }
    params = inbound_params(msg, incoming.profile_name)
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            resp = await apost_signed(client, emu.inbound_url, params, emu.settings.auth_token)
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


async def _read_phone_message(request: Request) -> PhoneMessage:
    """JSON or form body → PhoneMessage, with FastAPI's usual 422 on bad input."""
    if request.headers.get("content-type", "").startswith("application/json"):
        data: Any = await request.json()
    else:
        data = dict(await request.form())
    try:
        return PhoneMessage.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


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
        sent.append(create_outbound(emu, req, direction="outbound-reply"))
    return sent
