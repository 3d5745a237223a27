"""Reminders: create, change, pause, delete, and run each due slot exactly once.

Each run claims its slot by moving `next_run_at` forward with a conditional UPDATE in
the same transaction that stores the message, so several workers (or a periodic sweep
racing a reminder's own delayed job) send it once. After downtime a reminder sends one
catch-up message and keeps its cadence: the next slot is the first slot of its schedule
(due time + k × interval) after now; the missed ones are counted, never sent in a burst.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from relaydesk.channels.twilio.numbers import Address, InvalidNumber, parse_address
from relaydesk.core import audit
from relaydesk.core.config import get_settings
from relaydesk.core.db import utcnow
from relaydesk.core.errors import Conflict, Invalid, NotFound
from relaydesk.core.i18n import N_
from relaydesk.core.tasks import enqueue_after_commit
from relaydesk.messaging import service as messaging
from relaydesk.reminders.models import Reminder, ReminderOutcome, ReminderRun
from relaydesk.reminders.schemas import MAX_INTERVAL_MINUTES

# A start time typed into a form a moment ago is "now", not an error.
START_GRACE = timedelta(minutes=1)


def _address(to: str) -> Address:
    try:
        return parse_address(to, get_settings().default_region)
    except InvalidNumber as exc:
        raise Invalid(exc.template, params=exc.params, field="to") from None


def _clean_body(body: str) -> str:
    text = body.strip()
    if not text:
        raise Invalid(N_("The reminder needs a text"), params={}, field="body")
    if len(text) > messaging.MAX_BODY:
        raise Invalid(
            N_("The text is %(length)s characters long; the limit is %(limit)s"),
            params={"length": f"{len(text):,}", "limit": f"{messaging.MAX_BODY:,}"},
            field="body",
        )
    return text


def _check_interval(minutes: int) -> int:
    if not 1 <= minutes <= MAX_INTERVAL_MINUTES:
        raise Invalid(
            N_("The interval must be between 1 and %(max)s minutes"),
            params={"max": f"{MAX_INTERVAL_MINUTES:,}"},
            field="interval_minutes",
        )
    return minutes


def next_slot(due: datetime, interval: timedelta, now: datetime) -> tuple[datetime, int]:
    """The first slot of the cadence through `due` that is after `now`, and slots missed.

    A run at `now` for slot `due` covers every slot up to now: the ones between are
    missed (downtime, a pause) and are not sent later.
    """
    if due > now:
        return due, 0
    behind = (now - due) // interval
    return due + (behind + 1) * interval, behind


def _wake(session: Session, reminder_id: int, at: datetime, now: datetime) -> None:
    """Queue the reminder's run for `at` (the minute sweep is the safety net)."""
    delay = max((at - now).total_seconds(), 0.0)
    enqueue_after_commit(session, "reminders.run", reminder_id, delay=delay or None)


def list_reminders(session: Session) -> Sequence[Reminder]:
    """Every reminder, newest first."""
    return session.scalars(select(Reminder).order_by(Reminder.id.desc())).all()


def get(session: Session, reminder_id: int, *, for_update: bool = False) -> Reminder:
    """One reminder, or NotFound."""
    reminder = session.get(Reminder, reminder_id, with_for_update=for_update or None)
    if reminder is None:
        raise NotFound(N_("Reminder %(id)s does not exist"), params={"id": reminder_id})
    return reminder


def create(
    session: Session,
    to: str,
    body: str,
    interval_minutes: int,
    start_at: datetime | None,
    actor: str,
) -> Reminder:
    """A new reminder; its first message goes out at `start_at` (default: now)."""
    address = _address(to)
    text = _clean_body(body)
    _check_interval(interval_minutes)
    now = utcnow()
    first = messaging.check_send_time(start_at, now, field="start_at", grace=START_GRACE) or now
    # Say so now rather than skip every run: unsubscribed, or a WhatsApp window closed then.
    problem = messaging.refusal(session, address.twilio, at=first if start_at else None)
    if problem is not None:
        raise problem
    reminder = Reminder(
        to_addr=address.twilio,
        participant=address.e164,
        channel=address.channel,
        body=text,
        interval_minutes=interval_minutes,
        enabled=True,
        start_at=first,
        next_run_at=first,
        run_count=0,
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    session.add(reminder)
    session.flush()
    audit.record(
        session,
        actor,
        "reminder.create",
        f"reminder:{reminder.id}",
        {
            "to": reminder.to_addr,
            "interval_minutes": interval_minutes,
            "start_at": first.isoformat(),
        },
    )
    _wake(session, reminder.id, first, now)
    return reminder


def update_reminder(
    session: Session,
    reminder_id: int,
    actor: str,
    *,
    body: str | None = None,
    interval_minutes: int | None = None,
    enabled: bool | None = None,
) -> Reminder:
    """Change the text or the interval, pause or resume (audited).

    A new interval counts from the last run (at once if that is already past); resuming
    continues on the cadence at its next slot after now: the runs a pause skipped are
    not sent.
    """
    reminder = get(session, reminder_id, for_update=True)
    now = utcnow()
    changes: dict[str, Any] = {}
    text = _clean_body(body) if body is not None else reminder.body
    if text != reminder.body:
        reminder.body = changes["body"] = text
    if interval_minutes is not None and interval_minutes != reminder.interval_minutes:
        reminder.interval_minutes = changes["interval_minutes"] = _check_interval(interval_minutes)
        if reminder.last_run_at is not None:
            step = timedelta(minutes=interval_minutes)
            reminder.next_run_at = max(reminder.last_run_at + step, now)
    if enabled is not None and enabled != reminder.enabled:
        reminder.enabled = changes["enabled"] = enabled
        if enabled:
            step = timedelta(minutes=reminder.interval_minutes)
            reminder.next_run_at = next_slot(reminder.next_run_at, step, now)[0]
    if not changes:
        return reminder
    reminder.updated_at = now
    audit.record(session, actor, "reminder.update", f"reminder:{reminder_id}", changes)
    session.flush()
    if reminder.enabled:
        _wake(session, reminder_id, reminder.next_run_at, now)
    return reminder


def delete_reminder(session: Session, reminder_id: int, actor: str) -> None:
    """Delete a reminder and its run history (audited); the messages it sent stay."""
    reminder = get(session, reminder_id, for_update=True)
    audit.record(
        session,
        actor,
        "reminder.delete",
        f"reminder:{reminder_id}",
        {"to": reminder.to_addr, "body": reminder.body[:200], "runs": reminder.run_count},
    )
    session.execute(delete(Reminder).where(Reminder.id == reminder_id))


def list_runs(session: Session, reminder_id: int, limit: int = 50) -> Sequence[ReminderRun]:
    """The reminder's runs, newest first."""
    get(session, reminder_id)
    return session.scalars(
        select(ReminderRun)
        .where(ReminderRun.reminder_id == reminder_id)
        .order_by(ReminderRun.seq.desc())
        .limit(limit)
    ).all()


def due_ids(session: Session, now: datetime, limit: int) -> list[int]:
    """Enabled reminders whose next slot has come, most overdue first."""
    return list(
        session.scalars(
            select(Reminder.id)
            .where(Reminder.enabled, Reminder.next_run_at <= now)
            .order_by(Reminder.next_run_at)
            .limit(limit)
        ).all()
    )


def run(session: Session, reminder_id: int) -> ReminderRun | None:
    """Send the reminder's due message once; None when not due or another worker took it."""
    now = utcnow()
    seen = session.execute(
        select(Reminder.next_run_at, Reminder.interval_minutes, Reminder.run_count).where(
            Reminder.id == reminder_id, Reminder.enabled
        )
    ).first()
    if seen is None or seen.next_run_at > now:
        return None
    following, missed = next_slot(seen.next_run_at, timedelta(minutes=seen.interval_minutes), now)
    claimed = session.execute(
        update(Reminder)
        .where(
            Reminder.id == reminder_id,
            Reminder.enabled,
            Reminder.run_count == seen.run_count,  # nobody ran it since we looked
            Reminder.next_run_at <= now,
        )
        .values(next_run_at=following, run_count=seen.run_count + 1, last_run_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    reminder = session.get(Reminder, reminder_id, populate_existing=True)
    assert reminder is not None
    entry = ReminderRun(
        reminder_id=reminder_id,
        seq=seen.run_count + 1,
        due_at=seen.next_run_at,
        ran_at=now,
        outcome=ReminderOutcome.SENT,
        missed_runs=missed,
    )
    try:
        with session.begin_nested():
            request = messaging.SendRequest(
                to=reminder.to_addr, body=reminder.body, source="reminder"
            )
            entry.message_id = messaging.send(session, request).id
    except (Conflict, Invalid) as exc:  # opted out, WhatsApp window closed…
        entry.outcome = ReminderOutcome.SKIPPED
        entry.reason = exc.code
        entry.detail = exc.message
    session.add(entry)
    reminder.last_outcome = entry.outcome
    reminder.last_reason = entry.reason
    reminder.last_detail = entry.detail
    reminder.last_message_id = entry.message_id
    reminder.updated_at = now
    _wake(session, reminder_id, following, now)
    return entry
