"""Creating campaigns, reading their progress, pausing, resuming and canceling them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from relaydesk.campaigns.models import Batch, BatchStatus, Recipient, RecipientStatus
from relaydesk.campaigns.parsing import Parsed, parse_numbers
from relaydesk.campaigns.schemas import BatchOut, RecipientOut
from relaydesk.channels.twilio.account import current_account
from relaydesk.channels.twilio.segments import count_segments
from relaydesk.core.audit import record
from relaydesk.core.config import get_settings
from relaydesk.core.db import utcnow
from relaydesk.core.errors import Conflict, Invalid, NotFound
from relaydesk.core.i18n import N_
from relaydesk.core.tasks import enqueue_after_commit
from relaydesk.inbox.profile_schemas import CampaignItem
from relaydesk.inbox.profiles import register_section
from relaydesk.messaging import queries
from relaydesk.messaging.models import Message, MessageStatus
from relaydesk.messaging.service import MAX_BODY, check_send_time
from relaydesk.segments import service as segments
from relaydesk.segments.schemas import Rules

FINAL = frozenset({BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.CANCELED})
# What a person may do to a batch: the statuses it may come from, and where it goes.
ACTIONS: dict[str, tuple[frozenset[BatchStatus], BatchStatus]] = {
    "pause": (frozenset({BatchStatus.PENDING, BatchStatus.PROCESSING}), BatchStatus.PAUSED),
    "resume": (frozenset({BatchStatus.PAUSED}), BatchStatus.PROCESSING),
    "cancel": (
        frozenset({BatchStatus.PENDING, BatchStatus.PROCESSING, BatchStatus.PAUSED}),
        BatchStatus.CANCELED,
    ),
}
# A start time typed to the minute in a form is "now" for up to a minute.
SEND_AT_GRACE = timedelta(minutes=1)
MAX_INPUT_CHARS = 200_000


def recipient_state(status: str, message: dict[str, Any] | None) -> str:
    """A recipient's status, read through the message it produced (callbacks included)."""
    if status == RecipientStatus.CLAIMED:
        return "sending"  # only ever seen inside the claiming transaction
    if status != RecipientStatus.QUEUED or message is None:
        return status
    sent = message["status"]
    if sent in (MessageStatus.DELIVERED, MessageStatus.READ):
        return "delivered"
    if sent == MessageStatus.UNDELIVERED:
        return "undelivered"
    if sent in (MessageStatus.FAILED, MessageStatus.CANCELED):
        return "failed"
    if message["sid"] is None:
        return "sending"
    return "sent"


def preview(text: str, body: str) -> dict[str, Any]:
    """What a batch would be, without creating it (the panel's live count)."""
    settings = get_settings()
    parsed = parse_numbers(text[:MAX_INPUT_CHARS], settings.default_region)
    per_message = count_segments(body).segments if body else 0
    return {
        "total": parsed.total,
        "valid": len(parsed.numbers),
        "duplicates": parsed.duplicates,
        "invalid": parsed.invalid,
        "segments_per_message": per_message,
        "estimated_segments": per_message * len(parsed.numbers),
        "limit": settings.campaign_max_recipients,
        "skipped": [],
        "whatsapp": 0,
        "whatsapp_window_open": 0,
    }


def preview_segment(session: Session, segment_id: int, body: str) -> dict[str, Any]:
    """What a batch to a segment would be now: its recipients, the skipped ones and why."""
    counted = segments.count(session, Rules.model_validate(segments.get(session, segment_id).rules))
    skipped: list[dict[str, str]] = []
    if counted.recipients <= counted.limit:  # over the limit: the counts say enough
        resolution = segments.resolve(session, segment_id)
        skipped = [{"input": number, "reason": why} for number, why in resolution.skipped]
    per_message = count_segments(body).segments if body else 0
    return {
        "total": counted.matching,
        "valid": counted.recipients,
        "duplicates": 0,
        "invalid": [],
        "segments_per_message": per_message,
        "estimated_segments": per_message * counted.recipients,
        "limit": counted.limit,
        "skipped": skipped,
        "whatsapp": counted.whatsapp,
        "whatsapp_window_open": counted.whatsapp_window_open,
    }


@dataclass(frozen=True)
class Plan:
    """A checked campaign, not stored yet: what the confirmation step shows."""

    body: str
    parsed: Parsed
    sender: str
    segments_per_message: int
    send_at: datetime | None
    segment: tuple[int, str] | None = None  # (id, name) when sent to a segment
    skipped: tuple[tuple[str, str], ...] = ()  # a segment's opted-out members, and why

    @property
    def valid(self) -> int:
        """Recipients after normalising and removing duplicates."""
        return len(self.parsed.numbers)


def _segment_recipients(
    session: Session, segment_id: int
) -> tuple[Parsed, tuple[int, str], tuple[tuple[str, str], ...]]:
    """A segment's members now, as a parsed list (the limit applies to the resolved list)."""
    segment = segments.get(session, segment_id)
    resolution = segments.resolve(session, segment_id)
    if not resolution.recipients:
        raise Invalid(
            N_("The segment %(name)s has no contact a campaign could reach"),
            params={"name": segment.name},
            field="segment_id",
            skipped=[{"input": n, "reason": why} for n, why in resolution.skipped[:20]],
        )
    parsed = Parsed(
        numbers=[(address, address) for address in resolution.recipients],
        total=resolution.matching,
    )
    return parsed, (segment.id, segment.name), tuple(resolution.skipped)


def validate(
    numbers: str,
    body: str,
    send_at: datetime | None,
    *,
    session: Session | None = None,
    segment_id: int | None = None,
) -> Plan:
    """Every check `create` makes, storing nothing (a segment is read through `session`)."""
    settings = get_settings()
    if segment_id is not None and numbers.strip():
        raise Invalid(
            N_("Give either the numbers or a segment, not both"), params={}, field="segment_id"
        )
    text = body.strip()
    if not text:
        raise Invalid(N_("Write the message to send"), params={}, field="body")
    if len(text) > MAX_BODY:
        raise Invalid(
            N_("The message is %(length)s characters long; Twilio's limit is %(limit)s"),
            params={"length": f"{len(text):,}", "limit": f"{MAX_BODY:,}"},
            field="body",
        )
    per_message = count_segments(text).segments
    if segment_id is not None:
        if session is None:
            raise ValueError("a segment is read through a session")
        when, sender = check_send_time(send_at, utcnow(), grace=SEND_AT_GRACE), _sender()
        parsed, segment, skipped = _segment_recipients(session, segment_id)
        return Plan(text, parsed, sender, per_message, when, segment, skipped)
    if len(numbers) > MAX_INPUT_CHARS:
        raise Invalid(N_("The list of numbers is too long to read"), params={}, field="numbers")
    parsed = parse_numbers(numbers, settings.default_region)
    if not parsed.numbers:
        raise Invalid(
            N_("The list has no valid phone number"),
            params={},
            field="numbers",
            invalid=parsed.invalid,
        )
    limit = settings.campaign_max_recipients
    if len(parsed.numbers) > limit:
        raise Invalid(
            N_(
                "The list has %(count)s valid numbers; a campaign may have at most "
                "%(limit)s (CAMPAIGN_MAX_RECIPIENTS). Split it into several campaigns."
            ),
            params={"count": f"{len(parsed.numbers):,}", "limit": f"{limit:,}"},
            field="numbers",
        )
    when = check_send_time(send_at, utcnow(), grace=SEND_AT_GRACE)
    return Plan(text, parsed, _sender(), per_message, when)


def _sender() -> str:
    """The configured sender (Messaging Service first); Conflict when there is none."""
    account = current_account()
    sender = account.messaging_service_sid or account.default_from or ""
    if not sender:
        raise Conflict(
            N_("No sender is configured: set a default number or a Messaging Service"),
            params={},
        )
    return sender


def create(
    session: Session,
    numbers: str,
    body: str,
    send_at: datetime | None,
    actor: str,
    segment_id: int | None = None,
) -> Batch:
    """Validate the recipients and the text, then store the batch and its recipients.

    To a segment, its members are read now and stored as the recipients (the segment
    changing later changes nothing); opted-out members are stored already skipped, with
    the reason, so the report lists them as a pasted list's would.
    """
    plan = validate(numbers, body, send_at, session=session, segment_id=segment_id)
    parsed, send_at, now = plan.parsed, plan.send_at, utcnow()
    batch = Batch(
        body=plan.body,
        status=BatchStatus.PENDING,
        sender=plan.sender,
        total=parsed.total,
        valid=plan.valid + len(plan.skipped),
        duplicates=parsed.duplicates,
        invalid=parsed.invalid,
        segments_per_message=plan.segments_per_message,
        send_at=send_at,
        consecutive_failures=0,
        created_by=actor,
        segment_id=plan.segment[0] if plan.segment else None,
        segment_name=plan.segment[1] if plan.segment else None,
        created_at=now,
        updated_at=now,
    )
    session.add(batch)
    session.flush()
    session.execute(
        insert(Recipient),
        [
            {
                "batch_id": batch.id,
                "input": raw,
                "number": address,
                "status": RecipientStatus.PENDING,
            }
            for raw, address in parsed.numbers
        ],
    )
    if plan.skipped:
        session.execute(
            insert(Recipient),
            [
                {
                    "batch_id": batch.id,
                    "input": address,
                    "number": address,
                    "status": RecipientStatus.SKIPPED,
                    "reason": why,
                }
                for address, why in plan.skipped
            ],
        )
    details: dict[str, Any] = {
        "recipients": len(parsed.numbers),
        "send_at": send_at.isoformat() if send_at else None,
    }
    if plan.segment:
        details.update(segment_id=plan.segment[0], skipped=len(plan.skipped))
    record(session, actor, "campaign.create", f"batch:{batch.id}", details)
    delay = max(0.0, (send_at - now).total_seconds()) if send_at else None
    enqueue_after_commit(session, "campaigns.dispatch", batch.id, delay=delay or None)
    return batch


def _recipients(session: Session, batch_id: int) -> list[Recipient]:
    return list(
        session.scalars(
            select(Recipient).where(Recipient.batch_id == batch_id).order_by(Recipient.id)
        )
    )


def counters(session: Session, batch_ids: list[int]) -> dict[int, dict[str, int]]:
    """Recipient counts per state, through the messages (so callbacks count at once)."""
    out: dict[int, dict[str, int]] = {
        bid: dict.fromkeys(("pending", "sending", "sent", "delivered", "failed", "skipped"), 0)
        for bid in batch_ids
    }
    if not batch_ids:
        return out
    # One grouped query (recipients joined to their messages): the panel and API clients
    # poll this while a campaign runs, so it must not read 10,000 rows into Python.
    has_sid = Message.sid.is_not(None)
    rows = session.execute(
        select(Recipient.batch_id, Recipient.status, Message.status, has_sid, func.count())
        .select_from(Recipient)
        .outerjoin(Message, Message.id == Recipient.message_id)
        .where(Recipient.batch_id.in_(batch_ids))
        .group_by(Recipient.batch_id, Recipient.status, Message.status, has_sid)
    ).all()
    for batch_id, status, sent_status, sent, count in rows:
        message = None if sent_status is None else {"status": sent_status, "sid": sent or None}
        state = recipient_state(status, message)
        bucket = {"undelivered": "failed", "queued": "sending", "claimed": "sending"}.get(
            state, state
        )
        out[batch_id][bucket] += count
    for counts in out.values():
        # "sent" counts everything Twilio accepted, delivered ones included.
        counts["sent"] += counts["delivered"]
    return out


def batch_out(session: Session, batch: Batch) -> BatchOut:
    """One batch as the API shows it, with its counters."""
    return _batch_out(batch, counters(session, [batch.id])[batch.id])


def _batch_out(batch: Batch, counts: dict[str, int]) -> BatchOut:
    """A batch with its counters; the estimate and the progress (0..1) follow from them."""
    done = counts["sent"] + counts["failed"] + counts["skipped"]
    return BatchOut(
        id=batch.id,
        status=batch.status,
        body=batch.body,
        sender=batch.sender,
        total=batch.total,
        valid=batch.valid,
        duplicates=batch.duplicates,
        invalid=batch.invalid or [],
        segments_per_message=batch.segments_per_message,
        estimated_segments=batch.segments_per_message * batch.valid,
        send_at=batch.send_at,
        note=batch.note,
        counters=counts,
        progress=round(done / batch.valid, 4) if batch.valid else 1.0,
        created_by=batch.created_by,
        segment_id=batch.segment_id,
        segment_name=batch.segment_name,
        created_at=batch.created_at,
        started_at=batch.started_at,
        finished_at=batch.finished_at,
    )


def list_batches(session: Session, limit: int = 20) -> list[BatchOut]:
    """The newest batches with their counters."""
    batches = list(session.scalars(select(Batch).order_by(Batch.id.desc()).limit(limit)))
    counts = counters(session, [b.id for b in batches])
    return [_batch_out(b, counts[b.id]) for b in batches]


def get(session: Session, batch_id: int) -> Batch:
    """One batch, or NotFound."""
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFound(N_("Campaign %(id)s does not exist"), params={"id": batch_id})
    return batch


def with_counters(session: Session, batch_id: int) -> BatchOut:
    """One batch with its counters."""
    batch = get(session, batch_id)
    return _batch_out(batch, counters(session, [batch_id])[batch_id])


def recipients(session: Session, batch_id: int) -> list[RecipientOut]:
    """Every recipient with its status and, if it failed, Twilio's error and its meaning."""
    get(session, batch_id)
    rows = _recipients(session, batch_id)
    states = queries.delivery_states(session, [r.message_id for r in rows if r.message_id])
    out = []
    for r in rows:
        message = states.get(r.message_id) if r.message_id else None
        out.append(
            RecipientOut(
                id=r.id,
                input=r.input,
                number=r.number,
                status=recipient_state(r.status, message),
                reason=r.reason,
                message_id=r.message_id,
                sid=message["sid"] if message else None,
                error_code=message["error_code"] if message else None,
                error_message=message["error_message"] if message else None,
                updated_at=message["updated_at"] if message else r.claimed_at,
            )
        )
    return out


def change_state(session: Session, batch_id: int, action: str, actor: str) -> Batch:
    """Pause, resume or cancel a batch (with a clear 409 when it cannot)."""
    batch = get(session, batch_id)
    sources, target = ACTIONS[action]
    if batch.status not in sources:
        template = {
            "pause": N_("A %(status)s campaign cannot be paused"),
            "resume": N_("A %(status)s campaign cannot be resumed"),
            "cancel": N_("A %(status)s campaign cannot be canceled"),
        }[action]
        raise Conflict(template, params={"status": str(batch.status)}, code="campaign_state")
    now = utcnow()
    values: dict[str, Any] = {"status": target, "updated_at": now}
    if action == "resume":
        values.update(consecutive_failures=0, note=None, dispatcher_until=None)
        if batch.started_at is None:
            values["status"] = BatchStatus.PENDING
    if action == "cancel":
        values["finished_at"] = now
    changed = session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.status == batch.status)
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not changed:
        raise Conflict(N_("The campaign changed meanwhile; reload and try again"), params={})
    if action == "cancel":
        session.execute(
            update(Recipient)
            .where(Recipient.batch_id == batch_id, Recipient.status == RecipientStatus.PENDING)
            .values(status=RecipientStatus.SKIPPED, reason=N_("campaign canceled"))
            .execution_options(synchronize_session=False)
        )
    record(session, actor, f"campaign.{action}", f"batch:{batch_id}", None)
    if action == "resume":
        enqueue_after_commit(session, "campaigns.dispatch", batch_id)
    session.expire(batch)
    return batch


def pending_count(session: Session, batch_id: int) -> int:
    """Recipients not claimed yet."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(Recipient)
            .where(Recipient.batch_id == batch_id, Recipient.status == RecipientStatus.PENDING)
        )
        or 0
    )


def received_by(session: Session, number: str, limit: int) -> tuple[int, list[CampaignItem]]:
    """The campaigns a customer was a recipient of, newest first, and how many (one query).

    Recipients have no index by number (only per batch): the profile reads them all.
    """
    total = func.count().over().label("total")
    rows = session.execute(
        select(Batch, Recipient.status, Recipient.reason, Message.status, Message.sid, total)
        .join(Batch, Batch.id == Recipient.batch_id)
        .outerjoin(Message, Message.id == Recipient.message_id)
        .where(Recipient.number == number)
        .order_by(Batch.created_at.desc(), Batch.id.desc())
        .limit(limit)
    ).all()
    items = [
        CampaignItem(
            batch_id=batch.id,
            body=batch.body,
            batch_status=batch.status.value,
            status=recipient_state(
                status, {"status": sent, "sid": sid} if sent is not None else None
            ),
            reason=reason,
            created_at=batch.created_at,
            finished_at=batch.finished_at,
        )
        for batch, status, reason, sent, sid, _ in rows
    ]
    return (int(rows[0].total) if rows else 0), items


register_section("campaigns", received_by)
