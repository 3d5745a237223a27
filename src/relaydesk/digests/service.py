"""Digest recipients: manage them, preview and send a digest, and send the day's due ones.

The digest text comes from the index and maybe an LLM, which can take seconds; it is
composed outside any transaction (a SQLite write transaction locks the whole database).
So `preview`, `send_now` and `run_due` open their own short sessions around it; the
other functions follow the usual rule (the caller commits).

Exactly once per local day: `run_due` claims the day with a conditional UPDATE
(`last_sent_on` still before today, the row unchanged since it was read) in the
transaction that stores the message; a second worker, a second tick or a restart finds
the day taken. A manual send (`send_now`) does not take the day: it is an operator's
extra message (a routing check, a late joiner), and the scheduled digest still follows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from relaydesk.channels.twilio.numbers import InvalidNumber, parse_address
from relaydesk.core import audit
from relaydesk.core.config import get_settings
from relaydesk.core.db import session_scope, utcnow
from relaydesk.core.errors import Conflict, Invalid, NotFound, RelaydeskError
from relaydesk.core.i18n import N_
from relaydesk.digests.compose import Digest, NoNews, compose
from relaydesk.digests.models import DigestOutcome, NewsRecipient
from relaydesk.digests.schedule import (
    DEFAULT_TIMEZONE,
    MODES,
    due_day,
    next_send_at,
    parse_send_time,
    zone,
)
from relaydesk.digests.schemas import MAX_PROMPT, RecipientOut
from relaydesk.messaging import service as messaging

# A digest that failed (index or LLM down) is tried again at a later tick, at most this
# often; the failure's time is the row's `updated_at` (the failure is its last change).
RETRY_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class Fields:
    """A recipient's settings after validation."""

    phone: str
    send_time: str
    timezone: str
    mode: str
    prompt: str | None


def clean(
    phone: str, send_time: str, timezone: str | None, mode: str, prompt: str | None
) -> Fields:
    """Validate and normalise a recipient's settings; Invalid names the field at fault."""
    try:
        address = parse_address(phone, get_settings().default_region)
    except InvalidNumber as exc:
        raise Invalid(exc.template, params=exc.params, field="phone") from None
    at = parse_send_time(send_time)
    tz = (timezone or "").strip() or DEFAULT_TIMEZONE
    zone(tz)
    if mode not in MODES:
        raise Invalid(
            N_("The mode must be one of %(modes)s, not '%(mode)s'"),
            params={"modes": ", ".join(MODES), "mode": mode[:30]},
            field="mode",
        )
    text = (prompt or "").strip()
    if mode == "custom_prompt" and not text:
        raise Invalid(N_("A custom-prompt digest needs its prompt"), params={}, field="prompt")
    if len(text) > MAX_PROMPT:
        raise Invalid(
            N_("The prompt is %(length)s characters long; the limit is %(limit)s"),
            params={"length": f"{len(text):,}", "limit": f"{MAX_PROMPT:,}"},
            field="prompt",
        )
    # The prompt is only used in custom-prompt mode; keeping it elsewhere would mislead.
    return Fields(
        address.twilio, f"{at:%H:%M}", tz, mode, text if mode == "custom_prompt" else None
    )


def view(r: NewsRecipient, now: datetime | None = None) -> RecipientOut:
    """The recipient as the API shows it, with its next scheduled digest (None while off)."""
    upcoming = (
        next_send_at(r.send_time, r.timezone, r.active_since, r.last_sent_on, now or utcnow())
        if r.enabled
        else None
    )
    return RecipientOut.model_validate(r, context={"next_send_at": upcoming})


def list_recipients(session: Session) -> list[NewsRecipient]:
    """Every recipient, oldest first (the order they were added)."""
    return list(session.scalars(select(NewsRecipient).order_by(NewsRecipient.id)))


def get(session: Session, recipient_id: int, *, for_update: bool = False) -> NewsRecipient:
    """One recipient, or NotFound."""
    found = session.get(NewsRecipient, recipient_id, with_for_update=for_update or None)
    if found is None:
        raise NotFound(N_("News recipient %(id)s does not exist"), params={"id": recipient_id})
    return found


def create(session: Session, fields: Fields, actor: str, *, enabled: bool = True) -> NewsRecipient:
    """A new recipient; its first digest is the first send time after now (audited)."""
    now = utcnow()
    recipient = NewsRecipient(
        phone=fields.phone,
        send_time=fields.send_time,
        timezone=fields.timezone,
        mode=fields.mode,
        prompt=fields.prompt,
        enabled=enabled,
        active_since=now,
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    session.add(recipient)
    session.flush()
    audit.record(
        session,
        actor,
        "news.recipient.create",
        f"news_recipient:{recipient.id}",
        {"phone": fields.phone, "send_time": fields.send_time, "mode": fields.mode},
    )
    return recipient


def update_recipient(
    session: Session, recipient_id: int, actor: str, changes: dict[str, Any]
) -> NewsRecipient:
    """Change settings or `enabled` (audited); omitted keys stay.

    A new time, time zone or a resume counts from now: a digest whose time already
    passed today is not sent at once, the next one is.
    """
    recipient = get(session, recipient_id, for_update=True)
    merged = {
        "phone": recipient.phone,
        "send_time": recipient.send_time,
        "timezone": recipient.timezone,
        "mode": recipient.mode,
        "prompt": recipient.prompt,
        **{k: v for k, v in changes.items() if k != "enabled"},
    }
    fields = clean(**merged)
    changed = {k: v for k, v in asdict(fields).items() if getattr(recipient, k) != v}
    enabled = changes.get("enabled")
    if enabled is not None and enabled != recipient.enabled:
        changed["enabled"] = enabled
    if not changed:
        return recipient
    now = utcnow()
    for key, value in changed.items():
        setattr(recipient, key, value)
    if {"send_time", "timezone"} & changed.keys() or changed.get("enabled") is True:
        recipient.active_since = now
    recipient.updated_at = now
    audit.record(session, actor, "news.recipient.update", f"news_recipient:{recipient_id}", changed)
    session.flush()
    return recipient


def toggle(session: Session, recipient_id: int, actor: str) -> NewsRecipient:
    """Enable a disabled recipient or disable an enabled one."""
    recipient = get(session, recipient_id)
    return update_recipient(session, recipient_id, actor, {"enabled": not recipient.enabled})


def delete_recipient(session: Session, recipient_id: int, actor: str) -> None:
    """Delete a recipient (audited); the digests already sent stay in the history."""
    recipient = get(session, recipient_id, for_update=True)
    audit.record(
        session,
        actor,
        "news.recipient.delete",
        f"news_recipient:{recipient_id}",
        {"phone": recipient.phone, "send_time": recipient.send_time, "mode": recipient.mode},
    )
    session.delete(recipient)


def _max_segments() -> int:
    return get_settings().digest_max_segments


def preview(recipient_id: int) -> Digest:
    """The digest the recipient would get now, without sending anything."""
    with session_scope(write=False) as session:
        recipient = get(session, recipient_id)
        mode, prompt = recipient.mode, recipient.prompt
    return compose(mode, prompt, _max_segments())


def send_now(recipient_id: int, actor: str) -> int:
    """Compose and send a digest now (audited); the scheduled one still follows. The message id."""
    with session_scope(write=False) as session:
        recipient = get(session, recipient_id)
        mode, prompt, phone = recipient.mode, recipient.prompt, recipient.phone
        # Say "unsubscribed" before spending an LLM call on a message that cannot go.
        problem = messaging.refusal(session, phone)
    if problem is not None:
        raise problem
    digest = compose(mode, prompt, _max_segments())
    with session_scope() as session:
        recipient = get(session, recipient_id, for_update=True)
        request = messaging.SendRequest(to=recipient.phone, body=digest.text, source="news")
        message = messaging.send(session, request)
        now = utcnow()
        recipient.last_sent_at = now
        recipient.last_outcome = DigestOutcome.SENT
        recipient.last_detail = None
        recipient.last_message_id = message.id
        audit.record(
            session,
            actor,
            "news.recipient.send",
            f"news_recipient:{recipient_id}",
            {"message_id": message.id, "segments": digest.segments},
        )
        return message.id


# The scheduler --------------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """A recipient owed a digest, as read before composing (no session held)."""

    id: int
    phone: str
    mode: str
    prompt: str | None
    day: str
    seen_updated_at: datetime


@dataclass(frozen=True)
class Outcome:
    """What a run did for one recipient."""

    recipient_id: int
    day: str
    outcome: str  # sent | skipped | failed | taken (another worker had claimed the day)
    detail: str | None = None
    message_id: int | None = None


def due_now(session: Session, now: datetime) -> list[Due]:
    """Enabled recipients owed a digest at `now` (a recent failure waits RETRY_AFTER)."""
    owed: list[Due] = []
    for r in session.scalars(
        select(NewsRecipient).where(NewsRecipient.enabled).order_by(NewsRecipient.id)
    ):
        try:
            day = due_day(r.send_time, r.timezone, r.active_since, r.last_sent_on, now)
        except Invalid:  # a row written around the validation (SQL by hand): not ours to guess
            continue
        if day is None:
            continue
        if r.last_outcome == DigestOutcome.FAILED and now - r.updated_at < RETRY_AFTER:
            continue
        owed.append(Due(r.id, r.phone, r.mode, r.prompt, day.isoformat(), r.updated_at))
    return owed


def _not_yet_served(due: Due) -> Any:
    return or_(NewsRecipient.last_sent_on.is_(None), NewsRecipient.last_sent_on < due.day)


def _record_failure(due: Due, detail: str, now: datetime) -> None:
    with session_scope() as session:
        session.execute(
            update(NewsRecipient)
            .where(NewsRecipient.id == due.id, _not_yet_served(due))
            .values(last_outcome=DigestOutcome.FAILED, last_detail=detail[:2000], updated_at=now)
            .execution_options(synchronize_session=False)
        )


def deliver(due: Due, digest: Digest | NoNews, now: datetime) -> Outcome:
    """Claim the recipient's day and store its digest (or why none went) in one transaction."""
    with session_scope() as session:
        claimed = session.execute(
            update(NewsRecipient)
            .where(
                NewsRecipient.id == due.id,
                NewsRecipient.enabled,
                NewsRecipient.updated_at == due.seen_updated_at,  # not edited since read
                _not_yet_served(due),
            )
            .values(last_sent_on=due.day, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return Outcome(due.id, due.day, "taken")
        recipient = get(session, due.id)
        result = Outcome(
            due.id, due.day, "skipped", digest.message if isinstance(digest, NoNews) else None
        )
        if isinstance(digest, Digest):
            try:
                with session.begin_nested():
                    request = messaging.SendRequest(to=due.phone, body=digest.text, source="news")
                    message = messaging.send(session, request)
                result = Outcome(due.id, due.day, "sent", None, message.id)
            except (Conflict, Invalid) as exc:  # opted out, WhatsApp window closed…
                result = Outcome(due.id, due.day, "skipped", exc.message)
        recipient.last_outcome = DigestOutcome(result.outcome)
        recipient.last_detail = result.detail
        recipient.last_message_id = result.message_id
        if result.outcome == "sent":
            recipient.last_sent_at = now
        recipient.updated_at = now
        return result


def run_due(now: datetime | None = None) -> list[Outcome]:
    """Send every digest owed at `now` (default: the current time) once; what happened."""
    now = now or utcnow()
    with session_scope(write=False) as session:
        owed = due_now(session, now)
    max_segments = _max_segments()
    # Recipients with the same mode and prompt get the same digest within one tick.
    composed: dict[tuple[str, str | None], Digest | RelaydeskError] = {}
    outcomes: list[Outcome] = []
    for due in owed:
        key = (due.mode, due.prompt)
        if key not in composed:
            try:
                composed[key] = compose(due.mode, due.prompt, max_segments)
            except RelaydeskError as exc:  # NoNews, ProviderFailed, NotConfigured…
                composed[key] = exc
        digest = composed[key]
        if isinstance(digest, Digest | NoNews):
            outcomes.append(deliver(due, digest, now))
        else:
            _record_failure(due, digest.message, now)
            outcomes.append(Outcome(due.id, due.day, "failed", digest.message))
    return outcomes
