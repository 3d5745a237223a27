"""How an outbound message moves through Twilio's statuses, one step at a time."""

from __future__ import annotations

import secrets
from dataclasses import replace

from relaydesk.channels.sandbox.knobs import FailureRule
from relaydesk.channels.sandbox.store import StoredMessage
from relaydesk.channels.sandbox.validation import is_whatsapp
from relaydesk.channels.twilio.errors import describe_error
from relaydesk.channels.twilio.segments import count_segments
from relaydesk.core.config import SANDBOX_DEFAULT_FROM, Settings

# No further status callbacks follow these.
TERMINAL = frozenset({"delivered", "undelivered", "failed", "received", "canceled", "read"})


def new_sid(with_media: bool) -> str:
    """A message SID: `MM` for MMS, `SM` otherwise, then 32 hex digits."""
    return ("MM" if with_media else "SM") + secrets.token_hex(16)


def segments_for(to_addr: str, body: str, num_media: int) -> int:
    """NumSegments as Twilio reports it: always 1 for WhatsApp and MMS."""
    if is_whatsapp(to_addr) or num_media:
        return 1
    return count_segments(body).segments


def default_sender(settings: Settings, whatsapp: bool) -> str:
    """The number the emulator's Messaging Service (and the simulated phone) uses."""
    number = settings.default_from or SANDBOX_DEFAULT_FROM
    if whatsapp:
        return settings.twilio_whatsapp_from or f"whatsapp:{number.removeprefix('whatsapp:')}"
    return number.removeprefix("whatsapp:")


def advance(
    msg: StoredMessage, rule: FailureRule | None, now: float, settings: Settings
) -> StoredMessage | None:
    """The message after its next status step, or None when it has nowhere left to go."""
    if msg.status == "accepted":
        # The Messaging Service picks a sender only now, so segments become known too.
        sender = msg.from_addr or default_sender(settings, is_whatsapp(msg.to_addr))
        return replace(
            msg,
            status="queued",
            from_addr=sender,
            num_segments=segments_for(msg.to_addr, msg.body, msg.num_media),
            date_updated=now,
        )
    if msg.status == "queued":
        if rule and rule.status == "failed":
            return _failed(msg, "failed", rule.error_code, now)
        return replace(msg, status="sent", date_sent=now, date_updated=now)
    if msg.status == "sent":
        if rule and rule.status == "undelivered":
            return _failed(msg, "undelivered", rule.error_code, now)
        return replace(msg, status="delivered", date_updated=now)
    return None


def _failed(msg: StoredMessage, status: str, code: int, now: float) -> StoredMessage:
    return replace(
        msg, status=status, error_code=code, error_message=describe_error(code), date_updated=now
    )
