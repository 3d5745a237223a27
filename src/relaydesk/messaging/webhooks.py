"""Twilio's webhooks: validate the signature, parse, store (batched), answer at once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from relaydesk.channels.twilio.account import TwilioAccount, current_account_async
from relaydesk.channels.twilio.parsing import BadWebhook, InboundRecord, StatusRecord, parse_status
from relaydesk.channels.twilio.signature import SignatureChecker
from relaydesk.core.config import get_settings
from relaydesk.core.metrics import webhook_counters
from relaydesk.messaging.ingest import read_inbound
from relaydesk.messaging.writer import get_writer

log = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
MAX_WEBHOOK_BYTES = 64 * 1024


def candidate_urls(request: Request, account: TwilioAccount) -> list[str]:
    """Every URL Twilio may have signed: the public one and the one we received.

    Behind a trusted proxy the received URL already has the scheme and host the proxy
    was asked for (relaydesk.core.proxies); anyone else's X-Forwarded-* never count.
    """
    path = request.url.path
    query = f"?{request.url.query}" if request.url.query else ""
    urls = []
    if account.sources.get("public_base_url") != "default":
        urls.append(f"{account.public_base_url}{path}{query}")
    urls.append(str(request.url))
    return urls


@lru_cache(maxsize=4)
def _checker(auth_token: str) -> SignatureChecker:
    """One checker per auth token, so a token saved in the panel applies at once."""
    return SignatureChecker(auth_token)


async def _signature_ok(request: Request, params: dict[str, str]) -> bool:
    if not get_settings().twilio_validate_signature:
        return True
    # The database is read at most every few seconds, and then off the event loop.
    account = await current_account_async()
    return _checker(account.auth_token).is_valid(
        candidate_urls(request, account), params, request.headers.get("x-twilio-signature")
    )


async def _read_params(request: Request) -> dict[str, str] | Response:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_WEBHOOK_BYTES:
        return PlainTextResponse("Webhook body too large", status_code=413)
    # Read at most the limit: this runs before the signature is checked, so a body
    # of unknown length (chunked) must not be buffered whole.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_WEBHOOK_BYTES:
            return PlainTextResponse("Webhook body too large", status_code=413)
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        return PlainTextResponse("Webhook body is not UTF-8 form data", status_code=400)
    return dict(pairs)


async def _handle(
    kind: str,
    request: Request,
    parse: Callable[[dict[str, str], Request], InboundRecord | StatusRecord],
) -> Response | None:
    """Validate, parse and durably store one webhook; a Response only when refused."""
    params = await _read_params(request)
    if isinstance(params, Response):
        outcome = "too_large" if params.status_code == 413 else "invalid"
        webhook_counters[kind, outcome].inc()
        return params
    if not await _signature_ok(request, params):
        webhook_counters[kind, "bad_signature"].inc()
        return PlainTextResponse("Invalid Twilio signature", status_code=403)
    try:
        record = parse(params, request)
    except BadWebhook as exc:
        webhook_counters[kind, "invalid"].inc()
        return PlainTextResponse(str(exc), status_code=400)
    await get_writer().submit(record)
    webhook_counters[kind, "accepted"].inc()
    return None


async def inbound(request: Request) -> Response:
    """POST /twilio/inbound — a customer's SMS, MMS or WhatsApp message."""
    refused = await _handle("inbound", request, lambda params, _: read_inbound(params))
    return refused or Response(EMPTY_TWIML, media_type="text/xml")


async def status_callback(request: Request) -> Response:
    """POST /twilio/status — a delivery status of a message we sent."""
    refused = await _handle(
        "status",
        request,
        lambda params, req: parse_status(params, req.headers.get("i-twilio-idempotency-token")),
    )
    return refused or Response(status_code=200)


_FAST = {"/twilio/inbound": inbound, "/twilio/status": status_callback}
_KINDS = {"/twilio/inbound": "inbound", "/twilio/status": "status"}


class WebhookFrontDoor:
    """Sends Twilio's webhooks straight to their handlers, everything else to the app.

    Webhooks are the hot path (thousands a second); skipping the framework's
    middleware and routing for them halves the event loop's cost per webhook.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = _FAST.get(scope.get("path", "")) if scope["type"] == "http" else None
        if handler is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            response = await handler(Request(scope, receive))
        except Exception:
            webhook_counters[_KINDS[scope["path"]], "error"].inc()
            log.exception("webhook %s failed", scope["path"])
            response = PlainTextResponse("Internal error", status_code=500)
        await response(scope, receive, send)
