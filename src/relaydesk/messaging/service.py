"""The one way anything leaves relaydesk, and the changes operators make to history."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from relaydesk.admin import service as audit
from relaydesk.channels.twilio.account import current_account
from relaydesk.config import get_settings
from relaydesk.contacts import service as contacts
from relaydesk.contacts.numbers import Address, InvalidNumber, parse_address
from relaydesk.db import dialect_insert, utcnow
from relaydesk.errors import Conflict, Invalid, NotFound
from relaydesk.messaging.ingest import bump_conversations, bump_counter
from relaydesk.messaging.models import Conversation, Message
from relaydesk.messaging.segments import count_segments
from relaydesk.messaging.status import PENDING, SCHEDULED
from relaydesk.tasks import enqueue_after_commit

if TYPE_CHECKING:
    from relaydesk.contacts.models import Contact

MAX_BODY = 1600
MAX_MEDIA = 10
WHATSAPP_WINDOW = timedelta(hours=24)
CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")
SOURCES = frozenset(
    {"api", "operator", "auto_reply", "ai", "assistant", "reminder", "campaign", "news"}
)
# Sources that are a person writing: automation steps back in that conversation.
HUMAN_SOURCES = frozenset({"api", "operator"})
# How long an inline send waits before the queued safety-net job tries it.
INLINE_GRACE_SECONDS = 30.0
# How far ahead a message may be scheduled.
MAX_SCHEDULE_AHEAD = timedelta(days=366)


@dataclass
class SendRequest:
    """What a caller wants sent; validated by `send`."""

    to: str
    body: str | None = None
    media_urls: list[str] = field(default_factory=list)
    content_sid: str | None = None
    content_variables: dict[str, str] | None = None
    source: str = "api"
    from_: str | None = None
    user_id: int | None = None
    # Send later (aware, or naive = UTC); None sends at once.
    send_at: datetime | None = None


def send(
    session: Session, req: SendRequest, *, deliver_inline: bool = False, safety_net: bool = True
) -> Message:
    """Validate and store an outbound message; delivery happens after commit.

    With `deliver_inline` the caller calls `delivery.deliver(id)` itself right after
    committing (to tell a person about Twilio's answer); a queued job follows later as
    a safety net and finds nothing to do. Otherwise the queue delivers it at once.
    With `send_at` the message waits as "scheduled" and a delayed job delivers it then;
    opt-out and the WhatsApp window are checked now (for the send time) and again then.
    """
    settings = get_settings()
    if req.source not in SOURCES:
        raise ValueError(f"unknown message source {req.source!r}")
    try:
        address = parse_address(req.to, settings.default_region)
    except InvalidNumber as exc:
        raise Invalid(str(exc), field="to") from None
    body = req.body or ""
    _check_content(body, req, address.channel)
    now = utcnow()
    send_at = check_send_time(req.send_at, now)

    contact = contacts.get_or_create(session, address.e164, address.channel)
    conversation = _conversation_for(session, contact.id, req.from_)
    problem = _refusal(address, contact, conversation, req.content_sid, send_at)
    if problem is not None:
        raise problem
    sender = _sender(address.channel, req.from_, conversation)
    if conversation is None:
        conversation = _create_conversation(
            session, contact.id, address.e164, address.channel, sender
        )

    info = count_segments(body) if body else None
    channel = (
        address.channel if address.channel == "whatsapp" else ("mms" if req.media_urls else "sms")
    )
    message = Message(
        direction="outbound",
        channel=channel,
        from_addr=sender,
        to_addr=address.twilio,
        participant=address.e164,
        conversation_id=conversation.id,
        body=body,
        media=[{"url": u} for u in req.media_urls],
        num_media=len(req.media_urls),
        status=SCHEDULED if send_at else PENDING,
        num_segments=info.segments if info else 1,
        encoding=info.encoding if info else None,
        source=req.source,
        messaging_service_sid=current_account().messaging_service_sid,
        content_sid=req.content_sid,
        content_variables=json.dumps(req.content_variables, ensure_ascii=False)
        if req.content_variables
        else None,
        user_id=req.user_id,
        attempts=0,
        next_attempt_at=send_at or now,
        scheduled_at=send_at,
        created_at=now,
        updated_at=now,
        status_changed_at=now,
    )
    session.add(message)
    session.flush()
    bump_conversations(
        session,
        [
            {
                "cid": conversation.id,
                "n": 1,
                "unread": 0,
                "mid": message.id,
                "at": now,
                "body": _preview(body, req),
                "direction": "outbound",
            }
        ],
    )
    bump_counter(session, "outbound", 1)
    # A message still waiting for its time has not reached the customer: no takeover yet.
    if req.source in HUMAN_SOURCES and send_at is None:
        session.execute(
            update(Conversation)
            .where(Conversation.id == conversation.id)
            .values(human_replied_at=now)
            .execution_options(synchronize_session=False)
        )
    if send_at is not None:
        delay: float | None = (send_at - now).total_seconds()
    else:
        delay = INLINE_GRACE_SECONDS if deliver_inline else None
    if safety_net or send_at is not None:
        # Without it (campaigns pace their own deliveries) the minute sweep is the net.
        enqueue_after_commit(session, "messaging.deliver", message.id, delay=delay)
    return message


def check_send_time(
    value: datetime | None,
    now: datetime,
    *,
    field: str = "send_at",
    grace: timedelta = timedelta(0),
) -> datetime | None:
    """`value` in UTC (naive = UTC); Invalid unless it is ahead of `now` and within a year.

    A time up to `grace` in the past counts as now (a form's minute precision).
    """
    if value is None:
        return None
    when = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    too_early = when < now - grace if grace else when <= now
    if too_early:
        raise Invalid(
            f"{field} is in the past ({when:%Y-%m-%d %H:%M:%S} UTC); give a future time "
            "with its time zone, e.g. 2030-01-31T09:00:00+01:00",
            field=field,
        )
    if when > now + MAX_SCHEDULE_AHEAD:
        raise Invalid(f"{field} is more than a year ahead", field=field)
    return max(when, now)


def _refusal(
    address: Address,
    contact: Contact | None,
    conversation: Conversation | None,
    content_sid: str | None,
    send_at: datetime | None,
) -> Conflict | None:
    """Why nothing may go to `address` now or at `send_at`: an opt-out or a closed window."""
    if contact is not None and contact.opted_out_at is not None:
        return Conflict(
            f"{address.e164} unsubscribed on {contact.opted_out_at:%Y-%m-%d %H:%M} UTC "
            f"({contact.opt_out_reason or 'opted out'}); nothing can be sent until they text START",
            code="opted_out",
        )
    if address.channel == "whatsapp" and not content_sid:
        last_in = conversation.last_inbound_at if conversation else None
        at = send_at or utcnow()
        if last_in is None or at - last_in > WHATSAPP_WINDOW:
            when = " at the send time" if send_at else ""
            return Conflict(
                f"The WhatsApp 24-hour window with this customer is closed{when}: free text "
                "is not allowed; send an approved template (content_sid) instead",
                code="whatsapp_window_closed",
            )
    return None


def refusal(
    session: Session, to: str, *, at: datetime | None = None, content_sid: str | None = None
) -> Conflict | None:
    """Why a message to `to` would be refused now (or at `at`), without storing anything."""
    try:
        address = parse_address(to, get_settings().default_region)
    except InvalidNumber as exc:
        raise Invalid(str(exc), field="to") from None
    contact = contacts.find(session, address.e164, address.channel)
    conversation = _conversation_for(session, contact.id, None) if contact else None
    return _refusal(address, contact, conversation, content_sid, at)


def send_time_refusal(session: Session, message: Message) -> Conflict | None:
    """Why a scheduled message may no longer go out now (the customer opted out meanwhile…)."""
    channel = "whatsapp" if message.channel == "whatsapp" else "sms"
    address = Address(channel, message.participant)
    contact = contacts.find(session, address.e164, channel)
    conversation = (
        session.get(Conversation, message.conversation_id) if message.conversation_id else None
    )
    return _refusal(address, contact, conversation, message.content_sid, None)


def _check_content(body: str, req: SendRequest, channel: str) -> None:
    if not body.strip() and not req.media_urls and not req.content_sid:
        raise Invalid(
            "The message is empty: give a body, media_urls or a content_sid", field="body"
        )
    if len(body) > MAX_BODY:
        raise Invalid(
            f"The message is {len(body):,} characters long; Twilio's limit is {MAX_BODY:,}",
            field="body",
        )
    limit = 1 if channel == "whatsapp" else MAX_MEDIA
    if len(req.media_urls) > limit:
        raise Invalid(
            f"At most {limit} media file(s) per message on this channel", field="media_urls"
        )
    for url in req.media_urls:
        if not url.startswith(("https://", "http://")) or len(url) > 2000:
            raise Invalid(f"Media URL '{url[:80]}' must be an http(s) address", field="media_urls")
    if req.content_sid and not CONTENT_SID.match(req.content_sid):
        raise Invalid(
            "content_sid must look like HX followed by 32 hex digits", field="content_sid"
        )
    if req.content_variables is not None:
        if not req.content_sid:
            raise Invalid("content_variables need a content_sid", field="content_variables")
        if len(req.content_variables) > 100:
            raise Invalid("A template takes at most 100 variables", field="content_variables")


def _preview(body: str, req: SendRequest) -> str:
    """The one-line preview of an outbound message in the conversation list."""
    if body:
        return body[:200]
    if req.media_urls:
        return f"[{len(req.media_urls)} attachment(s)]"
    return "[template]"


def _conversation_for(session: Session, contact_id: int, from_: str | None) -> Conversation | None:
    query = select(Conversation).where(Conversation.contact_id == contact_id)
    if from_:
        query = query.where(Conversation.our_address == from_)
    query = query.order_by(Conversation.last_message_at.desc().nulls_last()).limit(1)
    return session.scalar(query)


def _sender(channel: str, from_: str | None, conversation: Conversation | None) -> str:
    if from_:
        return from_
    if conversation is not None:
        return conversation.our_address
    account = current_account()
    if account.messaging_service_sid:
        return account.messaging_service_sid
    if channel == "whatsapp":
        if account.whatsapp_from:
            return account.whatsapp_from
        base = account.default_from
        return f"whatsapp:{base}" if base else ""
    return account.default_from or ""


def _create_conversation(
    session: Session, contact_id: int, participant: str, channel: str, our_address: str
) -> Conversation:
    now = utcnow()
    session.execute(
        dialect_insert(session)(Conversation)
        .values(
            contact_id=contact_id,
            our_address=our_address,
            participant=participant,
            channel=channel,
            message_count=0,
            unread_count=0,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["contact_id", "our_address"])
    )
    conv = session.scalar(
        select(Conversation).where(
            Conversation.contact_id == contact_id, Conversation.our_address == our_address
        )
    )
    assert conv is not None
    return conv


def delete_message(session: Session, message_id: int, actor: str) -> None:
    """Delete one message from history, keeping counters true and the deletion audited."""
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound(f"Message {message_id} does not exist")
    conv_id, direction = message.conversation_id, message.direction
    audit.record(
        session,
        actor,
        "message.delete",
        f"message:{message_id}",
        {"sid": message.sid, "participant": message.participant, "direction": direction},
    )
    session.execute(delete(Message).where(Message.id == message_id))
    bump_counter(session, direction, -1)
    if conv_id is not None:
        _refresh_conversation(session, conv_id)


def _refresh_conversation(session: Session, conv_id: int) -> None:
    last = session.execute(
        select(Message.id, Message.created_at, Message.body, Message.direction)
        .where(Message.conversation_id == conv_id)
        .order_by(Message.id.desc())
        .limit(1)
    ).first()
    values = {
        "message_count": Conversation.message_count - 1,
        "last_message_id": last.id if last else None,
        "last_message_at": last.created_at if last else None,
        "last_body": (last.body or "")[:200] if last else None,
        "last_direction": last.direction if last else None,
    }
    session.execute(update(Conversation).where(Conversation.id == conv_id).values(**values))


def mark_read(session: Session, participant: str) -> None:
    """Clear the unread counter of every conversation with `participant`."""
    session.execute(
        update(Conversation)
        .where(Conversation.participant == participant, Conversation.unread_count > 0)
        .values(unread_count=0)
    )
