"""Twilio's webhook parameters turned into records that always fit the database.

A signed webhook is answered 200 before anyone can look at it, so whatever it carries
must be storable: integers within their columns, strings cut to their column sizes, and
no NUL bytes or lone surrogates (PostgreSQL's text refuses both). The parameters as
received (cleaned of those characters only) stay in the record's `raw`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from relaydesk.channels.twilio.numbers import WHATSAPP_PREFIX, loose_e164
from relaydesk.core.db import utcnow

log = logging.getLogger(__name__)

MAX_MEDIA = 10
# Twilio sends at most 1,600 characters (a few dozen segments); anything above is noise.
MAX_SEGMENTS = 100
# Twilio's error codes have five digits (30003, 21610, 63016 …).
MAX_ERROR_CODE = 99_999
# Column sizes (messaging.models, contacts.models, media.models).
SID_LENGTH = 64
ADDRESS_LENGTH = 64
PARTICIPANT_LENGTH = 20
PROFILE_NAME_LENGTH = 200
CONTENT_TYPE_LENGTH = 128
TOKEN_LENGTH = 128

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_ASCII_DIGITS = re.compile("[0-9]+")


# Twilio's message statuses (message_enum_status in its API description).
MESSAGE_STATUSES = frozenset(
    {
        "accepted",
        "scheduled",
        "canceled",
        "queued",
        "sending",
        "sent",
        "failed",
        "delivered",
        "undelivered",
        "receiving",
        "received",
        "read",
        "partially_delivered",
    }
)


@dataclass
class InboundRecord:
    """One inbound webhook, parsed."""

    sid: str
    channel: str  # sms | mms | whatsapp
    contact_channel: str  # sms | whatsapp
    participant: str  # customer E.164
    from_addr: str
    to_addr: str
    body: str
    media: list[dict[str, Any]]
    num_segments: int
    profile_name: str | None
    # "STOP" | "START" | "HELP" | None, filled by the reader: consent is not Twilio's rule.
    opt_out: str | None
    raw: dict[str, str]
    received_at: datetime = field(default_factory=utcnow)


@dataclass
class StatusRecord:
    """One status callback, parsed."""

    sid: str
    status: str
    error_code: int | None
    raw: dict[str, str]
    idempotency_token: str | None
    received_at: datetime = field(default_factory=utcnow)


class BadWebhook(ValueError):
    """The webhook lacks what Twilio always sends."""


def storable(text: str) -> str:
    """`text` with NUL bytes and lone surrogates replaced by U+FFFD (PostgreSQL refuses them)."""
    return _UNSTORABLE.sub("\ufffd", text) if _UNSTORABLE.search(text) else text


def storable_params(params: dict[str, str]) -> dict[str, str]:
    """Every name and value of a webhook made storable."""
    return {storable(name): storable(value) for name, value in params.items()}


def bounded_int(value: str | None, low: int, high: int, default: int) -> int:
    """A count Twilio sends as text, within [low, high]; `default` when it is not one.

    Only ASCII digits count: `int()` also reads "١٢" and fails on "²" (both pass
    `str.isdigit`), and refuses numbers of more than 4,300 digits.
    """
    text = (value or "").strip()
    if not _ASCII_DIGITS.fullmatch(text):
        return default
    if len(text) > len(str(high)):
        return high
    return min(max(int(text), low), high)


def error_code_of(value: str | None) -> int | None:
    """Twilio's error code when it looks like one (1-99999); the raw value stays in `raw`."""
    code = bounded_int(value, 0, MAX_ERROR_CODE + 1, 0)
    return code if 0 < code <= MAX_ERROR_CODE else None


def parse_inbound(params: dict[str, str]) -> InboundRecord:
    """Turn inbound webhook parameters into a record (every parameter is kept in `raw`)."""
    raw = storable_params(params)
    sid = raw.get("MessageSid") or raw.get("SmsMessageSid") or raw.get("SmsSid")
    from_addr, to_addr = raw.get("From", ""), raw.get("To", "")
    if not sid or not from_addr or not to_addr:
        raise BadWebhook("an inbound webhook needs MessageSid, From and To")
    if len(raw.get("MessagingServiceSid", "")) > SID_LENGTH:
        # Stored in its own column too; no real Messaging Service SID is this long.
        raw["MessagingServiceSid"] = raw["MessagingServiceSid"][:SID_LENGTH]
    whatsapp = from_addr.lower().startswith(WHATSAPP_PREFIX)
    media = media_of(raw)
    body = raw.get("Body", "")
    return InboundRecord(
        sid=sid[:SID_LENGTH],
        channel="whatsapp" if whatsapp else ("mms" if media else "sms"),
        contact_channel="whatsapp" if whatsapp else "sms",
        participant=loose_e164(from_addr)[:PARTICIPANT_LENGTH],
        from_addr=from_addr[:ADDRESS_LENGTH],
        to_addr=to_addr[:ADDRESS_LENGTH],
        body=body,
        media=media,
        num_segments=bounded_int(raw.get("NumSegments"), 1, MAX_SEGMENTS, 1),
        profile_name=(raw.get("ProfileName") or "")[:PROFILE_NAME_LENGTH] or None,
        opt_out=None,
        raw=raw,
    )


def media_of(params: dict[str, str]) -> list[dict[str, str]]:
    """The files of an inbound webhook: `{url, content_type}` for each MediaUrlN (≤ 10)."""
    num_media = bounded_int(params.get("NumMedia"), 0, MAX_MEDIA, 0)
    return [
        {
            "url": storable(params[f"MediaUrl{i}"]),
            "content_type": storable(params.get(f"MediaContentType{i}", ""))[:CONTENT_TYPE_LENGTH],
        }
        for i in range(num_media)
        if params.get(f"MediaUrl{i}")
    ]


def parse_status(params: dict[str, str], idempotency_token: str | None) -> StatusRecord:
    """Turn status-callback parameters into a record."""
    raw = storable_params(params)
    sid = raw.get("MessageSid") or raw.get("SmsSid")
    status = (raw.get("MessageStatus") or raw.get("SmsStatus") or "").strip().lower()
    if not sid or not status:
        raise BadWebhook("a status callback needs MessageSid and MessageStatus")
    if status not in MESSAGE_STATUSES:
        log.warning("unknown message status %.40r for %.64r; stored as an event only", status, sid)
    token = storable(idempotency_token)[:TOKEN_LENGTH] if idempotency_token else None
    return StatusRecord(
        sid=sid[:SID_LENGTH],
        status=status,
        error_code=error_code_of(raw.get("ErrorCode")),
        raw=raw,
        idempotency_token=token,
    )
