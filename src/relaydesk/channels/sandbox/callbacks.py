"""Signed form POSTs exactly as Twilio sends them: status callbacks and inbound webhooks."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

import httpx
import urllib3

from relaydesk.channels.sandbox.outbound import Outbound, shown
from relaydesk.channels.sandbox.render import API_VERSION
from relaydesk.channels.sandbox.store import StoredMessage
from relaydesk.channels.sandbox.validation import is_whatsapp
from relaydesk.channels.twilio.signature import sign

log = logging.getLogger(__name__)

# Twilio's defaults: 5 s to connect, 15 s in total (vendor facts §1.10, §3.5).
TIMEOUT = httpx.Timeout(15.0, connect=5.0)
USER_AGENT = "TwilioProxy/1.1"


def target_url(url: str) -> str:
    """The URL to call and sign: connection-override fragments (`#rc=...`) are never signed."""
    return url.split("#", 1)[0]


def signed_headers(url: str, params: Mapping[str, str], auth_token: str) -> dict[str, str]:
    """Headers of one delivery attempt series (a retry repeats the idempotency token)."""
    return {
        "X-Twilio-Signature": sign(url, params, auth_token),
        "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
        "User-Agent": USER_AGENT,
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
    }


def status_params(msg: StoredMessage) -> dict[str, str]:
    """The form Twilio posts to a message's StatusCallback for its current status."""
    params = {
        "AccountSid": msg.account_sid,
        "ApiVersion": API_VERSION,
        "From": msg.from_addr or "",
        "To": msg.to_addr,
        "MessageSid": msg.sid,
        "SmsSid": msg.sid,
        "MessageStatus": msg.status,
        "SmsStatus": msg.status,
    }
    if msg.messaging_service_sid:
        params["MessagingServiceSid"] = msg.messaging_service_sid
    if msg.error_code is not None:
        params["ErrorCode"] = str(msg.error_code)
    if is_whatsapp(msg.to_addr):
        params["ChannelPrefix"] = "whatsapp"
    return params


def post_signed(outbound: Outbound, url: str, params: Mapping[str, str], token: str) -> int | None:
    """POST a signed form; retry once if the connection is refused. Returns the HTTP status.

    Raises netguard.BlockedAddress when the guard refuses the address. On urllib3: the
    emulator's status lanes post hundreds a second, and httpx costs about twice the CPU
    per request.
    """
    url = target_url(url)
    headers = signed_headers(url, params, token)
    body = urlencode(dict(params))
    timeout = urllib3.Timeout(connect=TIMEOUT.connect, read=TIMEOUT.read)
    for attempt in (1, 2):
        try:
            answer = outbound.request("POST", url, body=body, headers=headers, timeout=timeout)
            return answer.status
        except urllib3.exceptions.NewConnectionError as exc:
            # Twilio's default retry policy: one more try, only when the connection failed.
            log.warning(
                "callback to %s failed to connect (attempt %d): %s", shown(url), attempt, exc
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            log.warning("callback to %s failed: %s", shown(url), exc)
            return None
    return None


async def apost_signed(
    client: httpx.AsyncClient, url: str, params: Mapping[str, str], token: str
) -> httpx.Response:
    """Async twin of `post_signed` for request handlers; raises when the target is unreachable."""
    url = target_url(url)
    headers = signed_headers(url, params, token)
    try:
        return await client.post(url, data=dict(params), headers=headers)
    except httpx.ConnectError:
        log.warning("webhook %s refused the connection; retrying once", url)
        return await client.post(url, data=dict(params), headers=headers)


def inbound_params(
    msg: StoredMessage,
    profile_name: str | None = None,
    content_types: Sequence[str] = (),
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The form Twilio posts to our incoming-message webhook for a received message.

    `content_types` go with `msg.media` in order (MediaUrlN, MediaContentTypeN); `extra`
    adds what the message carries besides text (Latitude..., ButtonText...).
    """
    params = {
        "MessageSid": msg.sid,
        "SmsSid": msg.sid,
        "SmsMessageSid": msg.sid,
        "AccountSid": msg.account_sid,
        "From": msg.from_addr or "",
        "To": msg.to_addr,
        "Body": msg.body,
        "NumMedia": str(msg.num_media),
        "NumSegments": str(msg.num_segments),
        "SmsStatus": "received",
        "ApiVersion": API_VERSION,
    }
    for n, (url, content_type) in enumerate(zip(msg.media, content_types, strict=True)):
        params[f"MediaContentType{n}"] = content_type
        params[f"MediaUrl{n}"] = url
    if msg.messaging_service_sid:
        params["MessagingServiceSid"] = msg.messaging_service_sid
    if is_whatsapp(msg.from_addr):
        bare = (msg.from_addr or "").removeprefix("whatsapp:")
        params["ProfileName"] = profile_name or "Sandbox customer"
        params["WaId"] = bare.lstrip("+")
    params.update(extra or {})
    return params
