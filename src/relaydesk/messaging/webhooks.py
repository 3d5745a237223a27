"""Twilio's webhooks: validate the signature, parse, store (batched), answer at once."""

from __future__ import annotations

import logging
from functools import lru_cache
from urllib.parse import parse_qsl

from starlette.datastructures import URL
from starlette.requests import ClientDisconnect
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


def candidate_urls(scope: Scope, account: TwilioAccount) -> list[str]:
    """Every URL Twilio may have signed: the public one and the one we received.

    Behind a trusted proxy the received URL already has the scheme and host the proxy
    was asked for (relaydesk.core.proxies); anyone else's X-Forwarded-* never count.
    """
    received = URL(scope=scope)
    query = f"?{received.query}" if received.query else ""
    urls = []
    if account.sources.get("public_base_url") != "default":
        urls.append(f"{account.public_base_url}{received.path}{query}")
    urls.append(str(received))
    return urls


@lru_cache(maxsize=4)
def _checker(auth_token: str) -> SignatureChecker:
    """One checker per auth token, so a token saved in the panel applies at once."""
    return SignatureChecker(auth_token)


async def _signature_ok(scope: Scope, params: dict[str, str], signature: str | None) -> bool:
    if not get_settings().twilio_validate_signature:
        return True
    # The database is read at most every few seconds, and then off the event loop.
    account = await current_account_async()
    return _checker(account.auth_token).is_valid(candidate_urls(scope, account), params, signature)


class _Refused(Exception):
    """A webhook answered with an error status (nothing stored)."""

    def __init__(self, status: int, text: str, outcome: str) -> None:
        super().__init__(text)
        self.status, self.text, self.outcome = status, text, outcome


async def _read_params(headers: dict[bytes, bytes], receive: Receive) -> dict[str, str]:
    length = headers.get(b"content-length", b"")
    if length.isdigit() and int(length) > MAX_WEBHOOK_BYTES:
        raise _Refused(413, "Webhook body too large", "too_large")
    # Read at most the limit: this runs before the signature is checked, so a body
    # of unknown length (chunked) must not be buffered whole.
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_WEBHOOK_BYTES:
            raise _Refused(413, "Webhook body too large", "too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise _Refused(400, "Webhook body is not UTF-8 form data", "invalid") from None
    return dict(parse_qsl(text, keep_blank_values=True, strict_parsing=False))


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value is not None else None


async def _handle(kind: str, scope: Scope, receive: Receive) -> None:
    """Validate, parse and durably store one webhook; _Refused when it is refused."""
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name, value)  # the first of a repeated header, as Starlette
    params = await _read_params(headers, receive)
    if not await _signature_ok(scope, params, _header(headers, b"x-twilio-signature")):
        raise _Refused(403, "Invalid Twilio signature", "bad_signature")
    try:
        record: InboundRecord | StatusRecord
        if kind == "inbound":
            record = read_inbound(params)
        else:
            record = parse_status(params, _header(headers, b"i-twilio-idempotency-token"))
    except BadWebhook as exc:
        raise _Refused(400, str(exc), "invalid") from None
    await get_writer().submit(record)


_KINDS = {"/twilio/inbound": "inbound", "/twilio/status": "status"}
# What Twilio gets for a webhook that was stored: an empty TwiML document for a message
# (nothing to send back from here), an empty 200 for a status callback.
_STORED = {
    "inbound": (EMPTY_TWIML.encode(), b"text/xml; charset=utf-8"),
    "status": (b"", None),
}


async def _respond(send: Send, status: int, body: bytes, content_type: bytes | None) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if content_type is not None:
        headers.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class WebhookFrontDoor:
    """Sends Twilio's webhooks straight to their handlers, everything else to the app.

    Webhooks are the hot path (thousands a second): they skip the framework's
    middleware, routing, request and response objects, and are read and answered as
    plain ASGI messages.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = _KINDS.get(scope.get("path", "")) if scope["type"] == "http" else None
        if kind is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            await _handle(kind, scope, receive)
        except _Refused as refused:
            webhook_counters[kind, refused.outcome].inc()
            await _respond(send, refused.status, refused.text.encode(), _PLAIN)
            return
        except ClientDisconnect:
            return  # Twilio hung up before sending the body: nothing to store or answer
        except Exception:
            webhook_counters[kind, "error"].inc()
            log.exception("webhook %s failed", scope["path"])
            await _respond(send, 500, b"Internal error", _PLAIN)
            return
        webhook_counters[kind, "accepted"].inc()
        await _respond(send, 200, *_STORED[kind])


_PLAIN = b"text/plain; charset=utf-8"
