"""The one way anything leaves relaydesk, and the changes operators make to history."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from relaydesk.channels.twilio.account import current_account
from relaydesk.channels.twilio.numbers import Address, InvalidNumber, parse_address
from relaydesk.channels.twilio.segments import count_segments
from relaydesk.contacts import consent
from relaydesk.contacts import service as contacts
from relaydesk.core import audit, owners
from relaydesk.core.config import get_settings
from relaydesk.core.db import dialect_insert, utcnow
from relaydesk.core.errors import (
    Invalid,
    NotFound,
    OptedOut,
    RelaydeskError,
    WindowClosed,
)
from relaydesk.core.i18n import N_
from relaydesk.core.tasks import BULK, enqueue_after_commit
from relaydesk.messaging import hooks
from relaydesk.messaging.ingest import bump_conversations, bump_counter
from relaydesk.messaging.models import (
    BULK_SOURCES,
    Conversation,
    Message,
    MessageStatus,
    SubmitState,
)

if TYPE_CHECKING:
    from relaydesk.contacts.models import Contact

MAX_BODY = 1600
# What a form or the API accepts as text at all; the service then says if it is too long.
MAX_INPUT = 20_000
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
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
    session: Session,
    req: SendRequest,
    *,
    deliver_inline: bool = False,
    safety_net: bool = True,
    claimed_for: timedelta | None = None,
    known: tuple[Contact, Conversation] | None = None,
) -> Message:
    """Validate and store an outbound message; delivery happens after commit.

    With `deliver_inline` the caller calls `delivery.deliver(id)` itself right after
    committing (to tell a person about Twilio's answer); a queued job follows later as
    a safety net and finds nothing to do. Otherwise the queue delivers it at once.
    With `claimed_for` it is stored already claimed by the caller, whose own Twilio call
    (`delivery.deliver_claimed`) follows the commit (see `send_many`).
    With `send_at` the message waits as "scheduled" and a delayed job delivers it then;
    opt-out and the WhatsApp window are checked now (for the send time) and again then.
    """
    (outcome,) = send_many(
        session,
        [req],
        deliver_inline=deliver_inline,
        safety_net=safety_net,
        claimed_for=claimed_for,
        known=[known] if known is not None else (),
    )
    if isinstance(outcome, RelaydeskError):
        raise outcome
    message = session.get(Message, outcome)
    assert message is not None
    return message


@dataclass(frozen=True)
class _Ready:
    """A request that passed the checks that need no database."""

    index: int
    req: SendRequest
    address: Address
    body: str
    send_at: datetime | None
    files: list[Any] = field(default_factory=list)  # media's checked files


def send_many(
    session: Session,
    requests: list[SendRequest],
    *,
    deliver_inline: bool = False,
    safety_net: bool = True,
    claimed_for: timedelta | None = None,
    known: Sequence[tuple[Contact, Conversation]] = (),
) -> list[int | RelaydeskError]:
    """`send` for many requests at once: per request, the new message's id or why not.

    Every request is judged by the same rules as a single send; the database work is
    done set-wise (one statement per table, not per message), which is what lets a
    campaign keep up with a fast sender. With `claimed_for`, the messages are stored
    already claimed for delivery by the caller for that long: its own Twilio call
    follows at once, and if the caller dies, the sweep reconciles with Twilio after
    the claim ran out before sending anything again.

    `known`: conversations the caller loaded in this transaction, with their contacts
    (an automatic answer's). A request sent from a known conversation's number to its
    customer joins it without the contact and the conversation being looked up again.
    The rules are the same (opt-out, the WhatsApp window): they read the known rows.
    """
    settings = get_settings()
    account = current_account()
    now = utcnow()
    results: list[int | RelaydeskError | None] = [None] * len(requests)
    ready: list[_Ready] = []
    for i, req in enumerate(requests):
        if req.source not in SOURCES:
            raise ValueError(f"unknown message source {req.source!r}")
        try:
            address = parse_address(req.to, settings.default_region)
        except InvalidNumber as exc:
            results[i] = Invalid(exc.template, params=exc.params, field="to")
            continue
        body = req.body or ""
        try:
            _check_content(body, req, address.channel)
            send_at = check_send_time(req.send_at, now)
            files = (
                hooks.outbound_files().inspect(session, req.media_urls, _channel(address, req))
                if req.media_urls
                else []
            )
        except Invalid as exc:
            results[i] = exc
            continue
        if claimed_for is not None and send_at is not None:
            raise ValueError("a scheduled message cannot be claimed for delivery now")
        ready.append(_Ready(i, req, address, body, send_at, files))

    given = {
        (conv.participant, conv.channel, conv.our_address): (contact, conv)
        for contact, conv in known
        if conv.contact_id == contact.id
    }

    def given_for(r: _Ready) -> tuple[Contact, Conversation] | None:
        return given.get((r.address.e164, r.address.channel, r.req.from_ or ""))

    found = contacts.get_or_create_many(
        session, [(r.address.e164, r.address.channel) for r in ready if given_for(r) is None]
    )
    by_contact = _conversations_of(session, [c.id for c in found.values()])
    accepted: list[tuple[_Ready, int, str]] = []  # request, contact id, sender
    for r in ready:
        pair = given_for(r)
        conversation: Conversation | None
        if pair is not None:
            contact, conversation = pair
        else:
            contact = found[(r.address.e164, r.address.channel)]
            conversation = _pick_conversation(by_contact.get(contact.id, []), r.req.from_)
        problem = _refusal(r.address, contact, conversation, r.req.content_sid, r.send_at)
        if problem is not None:
            results[r.index] = problem
            continue
        accepted.append((r, contact.id, _sender(r.address.channel, r.req.from_, conversation)))
    if not accepted:
        return _all(results)

    conv_ids = {(conv.contact_id, conv.our_address): conv.id for _, conv in given.values()}
    conv_ids |= _ensure_conversations(
        session,
        [
            (cid, r.address.e164, r.address.channel, sender)
            for r, cid, sender in accepted
            if (cid, sender) not in conv_ids
        ],
    )
    rows = []
    for r, cid, sender in accepted:
        info = count_segments(r.body) if r.body else None
        channel = _channel(r.address, r.req)
        claimed = claimed_for is not None
        rows.append(
            {
                "direction": "outbound",
                "channel": channel,
                "from_addr": sender,
                "to_addr": r.address.twilio,
                "participant": r.address.e164,
                "conversation_id": conv_ids[(cid, sender)],
                "body": r.body,
                "media": [],  # filled from the attachments below
                "num_media": len(r.req.media_urls),
                "status": MessageStatus.SCHEDULED if r.send_at else MessageStatus.PENDING,
                "num_segments": info.segments if info else 1,
                "encoding": info.encoding if info else None,
                "source": r.req.source,
                "messaging_service_sid": account.messaging_service_sid,
                "content_sid": r.req.content_sid,
                "content_variables": json.dumps(r.req.content_variables, ensure_ascii=False)
                if r.req.content_variables
                else None,
                "user_id": r.req.user_id,
                "attempts": 1 if claimed else 0,
                "submit_state": SubmitState.IN_FLIGHT if claimed else None,
                "submit_started_at": now if claimed else None,
                "claimed_by": owners.me() if claimed else None,
                "next_attempt_at": now + claimed_for
                if claimed_for is not None
                else (r.send_at or now),
                "scheduled_at": r.send_at,
                "created_at": now,
                "updated_at": now,
                "status_changed_at": now,
            }
        )
    ids = list(
        session.scalars(
            insert(Message).returning(Message.id, sort_by_parameter_order=True),
            rows,
        )
    )
    bump_conversations(
        session,
        [
            {
                "cid": row["conversation_id"],
                "n": 1,
                "unread": 0,
                "mid": mid,
                "at": now,
                "body": _preview(r.body, r.req),
                "direction": "outbound",
            }
            for (r, _, _), row, mid in zip(accepted, rows, ids, strict=True)
        ],
    )
    bump_counter(session, "outbound", len(ids))
    # A message still waiting for its time has not reached the customer: no takeover yet.
    human = {
        row["conversation_id"]
        for (r, _, _), row in zip(accepted, rows, strict=True)
        if r.req.source in HUMAN_SOURCES and r.send_at is None
    }
    if human:
        session.execute(
            update(Conversation)
            .where(Conversation.id.in_(sorted(human)))
            .values(human_replied_at=now)
            .execution_options(synchronize_session=False)
        )
    for (r, _, _), mid in zip(accepted, ids, strict=True):
        if r.files:
            hooks.outbound_files().record(session, mid, r.files)
    for (r, _, _), mid in zip(accepted, ids, strict=True):
        results[r.index] = mid
        if r.send_at is not None:
            delay: float | None = (r.send_at - now).total_seconds()
        elif claimed_for is not None:
            continue  # the caller delivers it; the minute sweep is the net
        else:
            delay = INLINE_GRACE_SECONDS if deliver_inline else None
        if safety_net or r.send_at is not None:
            # Without it (campaigns pace their own deliveries) the minute sweep is the net.
            queue = BULK if r.req.source in BULK_SOURCES else None
            enqueue_after_commit(session, "messaging.deliver", mid, delay=delay, queue=queue)
    return _all(results)


def _channel(address: Address, req: SendRequest) -> str:
    if address.channel == "whatsapp":
        return "whatsapp"
    return "mms" if req.media_urls else "sms"


def _all(results: list[int | RelaydeskError | None]) -> list[int | RelaydeskError]:
    done = [r for r in results if r is not None]
    assert len(done) == len(results), "every request has an outcome"
    return done


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
            N_(
                "%(field)s is in the past (%(when)s UTC); give a future time "
                "with its time zone, e.g. 2030-01-31T09:00:00+01:00"
            ),
            params={"field": field, "when": f"{when:%Y-%m-%d %H:%M:%S}"},
            field=field,
        )
    if when > now + MAX_SCHEDULE_AHEAD:
        raise Invalid(
            N_("%(field)s is more than a year ahead"), params={"field": field}, field=field
        )
    return max(when, now)


def opted_out(number: str, at: datetime, reason: str | None) -> OptedOut:
    """The refusal of a message to a contact who opted out at `at` (E.164 `number`)."""
    template, params = consent.opt_out_reason(reason)
    return OptedOut(template, params={"number": number, "when": f"{at:%Y-%m-%d %H:%M}", **params})


def _refusal(
    address: Address,
    contact: Contact | None,
    conversation: Conversation | None,
    content_sid: str | None,
    send_at: datetime | None,
) -> OptedOut | WindowClosed | None:
    """Why nothing may go to `address` now or at `send_at`: an opt-out or a closed window."""
    if contact is not None and contact.opted_out_at is not None:
        return opted_out(address.e164, contact.opted_out_at, contact.opt_out_reason)
    if address.channel == "whatsapp" and not content_sid:
        last_in = conversation.last_inbound_at if conversation else None
        at = send_at or utcnow()
        if last_in is None or at - last_in > WHATSAPP_WINDOW:
            if last_in is None:
                template = (
                    N_(
                        "The WhatsApp 24-hour window with this customer is closed at the send "
                        "time (they have never written to this number): WhatsApp allows free "
                        "text only within 24 hours of the customer's last message; send an "
                        "approved template (content_sid) instead"
                    )
                    if send_at
                    else N_(
                        "The WhatsApp 24-hour window with this customer is closed (they have "
                        "never written to this number): WhatsApp allows free text only within "
                        "24 hours of the customer's last message; send an approved template "
                        "(content_sid) instead"
                    )
                )
            else:
                template = (
                    N_(
                        "The WhatsApp 24-hour window with this customer is closed at the send "
                        "time (their last message was at %(last)s UTC): WhatsApp allows free "
                        "text only within 24 hours of the customer's last message; send an "
                        "approved template (content_sid) instead"
                    )
                    if send_at
                    else N_(
                        "The WhatsApp 24-hour window with this customer is closed (their last "
                        "message was at %(last)s UTC): WhatsApp allows free text only within "
                        "24 hours of the customer's last message; send an approved template "
                        "(content_sid) instead"
                    )
                )
            return WindowClosed(
                template,
                params={"last": f"{last_in:%Y-%m-%d %H:%M}"} if last_in else {},
                field="body",
                last_inbound_at=last_in.isoformat() if last_in else None,
            )
    return None


def refusal(
    session: Session, to: str, *, at: datetime | None = None, content_sid: str | None = None
) -> OptedOut | WindowClosed | None:
    """Why a message to `to` would be refused now (or at `at`), without storing anything."""
    try:
        address = parse_address(to, get_settings().default_region)
    except InvalidNumber as exc:
        raise Invalid(exc.template, params=exc.params, field="to") from None
    contact = contacts.find(session, address.e164, address.channel)
    conversation = _conversation_for(session, contact.id, None) if contact else None
    return _refusal(address, contact, conversation, content_sid, at)


def send_time_refusal(session: Session, message: Message) -> OptedOut | WindowClosed | None:
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
            N_("The message is empty: give a body, media_urls or a content_sid"),
            params={},
            field="body",
        )
    if len(body) > MAX_BODY:
        raise Invalid(
            N_("The message is %(length)s characters long; Twilio's limit is %(limit)s"),
            params={"length": f"{len(body):,}", "limit": f"{MAX_BODY:,}"},
            field="body",
        )
    limit = 1 if channel == "whatsapp" else MAX_MEDIA
    if len(req.media_urls) > limit:
        raise Invalid(
            N_("At most %(limit)s media file(s) per message on this channel"),
            params={"limit": limit},
            field="media_urls",
        )
    for url in req.media_urls:
        if not url.startswith(("https://", "http://")) or len(url) > 2000:
            raise Invalid(
                N_("Media URL '%(url)s' must be an http(s) address"),
                params={"url": url[:80]},
                field="media_urls",
            )
    if req.content_sid and not CONTENT_SID.match(req.content_sid):
        raise Invalid(
            N_("content_sid must look like HX followed by 32 hex digits"),
            params={},
            field="content_sid",
        )
    if req.content_variables is not None:
        if not req.content_sid:
            raise Invalid(
                N_("content_variables need a content_sid"),
                params={},
                field="content_variables",
            )
        if len(req.content_variables) > 100:
            raise Invalid(
                N_("A template takes at most 100 variables"),
                params={},
                field="content_variables",
            )


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


def _conversations_of(session: Session, contact_ids: list[int]) -> dict[int, list[Conversation]]:
    """Every conversation of these contacts, by contact."""
    found: dict[int, list[Conversation]] = {}
    wanted = sorted(set(contact_ids))
    for start in range(0, len(wanted), contacts.IN_CHUNK):
        chunk = wanted[start : start + contacts.IN_CHUNK]
        for conv in session.scalars(select(Conversation).where(Conversation.contact_id.in_(chunk))):
            found.setdefault(conv.contact_id, []).append(conv)
    return found


def _pick_conversation(convs: list[Conversation], from_: str | None) -> Conversation | None:
    """The conversation a send joins: with `from_` if given, else the latest one."""
    if from_:
        convs = [c for c in convs if c.our_address == from_]
    if not convs:
        return None
    return max(convs, key=lambda c: (c.last_message_at is not None, c.last_message_at or _EPOCH))


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


def _ensure_conversations(
    session: Session, wanted: list[tuple[int, str, str, str]]
) -> dict[tuple[int, str], int]:
    """Conversation ids by (contact id, our address), creating missing ones (race-safe).

    `wanted` holds (contact id, participant, channel, our address).
    """
    now = utcnow()
    unique = {(cid, ours): (cid, who, channel, ours) for cid, who, channel, ours in wanted}
    if not unique:
        return {}
    session.execute(
        dialect_insert(session)(Conversation).on_conflict_do_nothing(
            index_elements=["contact_id", "our_address"]
        ),
        [
            {
                "contact_id": cid,
                "our_address": ours,
                "participant": who,
                "channel": channel,
                "message_count": 0,
                "unread_count": 0,
                "created_at": now,
                "updated_at": now,
            }
            for cid, who, channel, ours in unique.values()
        ],
    )
    ids: dict[tuple[int, str], int] = {}
    contact_ids = sorted({cid for cid, _ in unique})
    for start in range(0, len(contact_ids), contacts.IN_CHUNK):
        chunk = contact_ids[start : start + contacts.IN_CHUNK]
        for cid, ours, conv_id in session.execute(
            select(Conversation.contact_id, Conversation.our_address, Conversation.id).where(
                Conversation.contact_id.in_(chunk)
            )
        ):
            ids[(cid, ours)] = conv_id
    return {key: ids[key] for key in unique}


def delete_message(session: Session, message_id: int, actor: str) -> None:
    """Delete one message from history, keeping counters true and the deletion audited."""
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound(N_("Message %(id)s does not exist"), params={"id": message_id})
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


def whatsapp_window(session: Session, to: str, from_: str | None = None) -> dict[str, Any]:
    """The 24-hour customer-service window with a WhatsApp customer: open, and until when."""
    try:
        address = parse_address(to, get_settings().default_region)
    except InvalidNumber as exc:
        raise Invalid(exc.template, params=exc.params, field="to") from None
    if address.channel != "whatsapp":
        raise Invalid(
            N_("The window applies to WhatsApp addresses (whatsapp:+48…)"), params={}, field="to"
        )
    contact = contacts.find(session, address.e164, address.channel)
    conversation = _conversation_for(session, contact.id, from_) if contact else None
    last_in = conversation.last_inbound_at if conversation else None
    closes = last_in + WHATSAPP_WINDOW if last_in else None
    return {
        "to": address.twilio,
        "open": bool(closes and closes > utcnow()),
        "last_inbound_at": last_in,
        "closes_at": closes,
    }
