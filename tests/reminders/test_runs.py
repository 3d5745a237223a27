"""Reminder runs: one message per slot, history, exactly once, catch-up, opt-out, pause."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from relaydesk.messaging.models import Message
from relaydesk.reminders.models import Reminder, ReminderRun
from relaydesk.reminders.service import next_slot
from tests.conftest import wait_for
from tests.reminders.conftest import sent_to, set_next_run

NewReminder = Callable[..., dict[str, Any]]


def utcnow() -> datetime:
    return datetime.now(UTC)


def runs_of(db: Any, reminder_id: int) -> list[ReminderRun]:
    return list(
        db.scalars(
            select(ReminderRun)
            .where(ReminderRun.reminder_id == reminder_id)
            .order_by(ReminderRun.seq)
        )
    )


def test_next_slot_keeps_the_cadence_and_counts_missed_slots() -> None:
    due = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)
    hour = timedelta(hours=1)
    assert next_slot(due, hour, due - timedelta(minutes=5)) == (due, 0)
    assert next_slot(due, hour, due) == (due + hour, 0)
    assert next_slot(due, hour, due + timedelta(seconds=1)) == (due + hour, 0)
    assert next_slot(due, hour, due + timedelta(hours=5, minutes=30)) == (due + 6 * hour, 5)
    assert next_slot(due, hour, due + 3 * hour) == (due + 4 * hour, 3)


def test_a_due_run_sends_one_reminder_message_and_records_it(
    api: httpx.Client, db: Any, new_reminder: NewReminder
) -> None:
    from relaydesk.reminders import tasks

    reminder = new_reminder("+48600100601", "Jutro odbiór zamówienia")
    due = utcnow() - timedelta(seconds=1)
    set_next_run(reminder["id"], due)
    tasks.run(reminder["id"])
    [message] = wait_for(lambda: sent_to(db, "+48600100601"), what="the reminder message")
    assert message.body == "Jutro odbiór zamówienia"
    assert message.direction == "outbound"
    wait_for(
        lambda: db.scalar(select(Message.sid).where(Message.id == message.id)),
        what="the message handed to Twilio",
    )

    [run] = api.get(f"/api/reminders/{reminder['id']}/runs").json()
    assert run["outcome"] == "sent"
    assert run["message_id"] == message.id
    assert run["seq"] == 1
    assert run["missed_runs"] == 0
    assert run["reason"] is None
    assert datetime.fromisoformat(run["due_at"]) == due
    shown = api.get(f"/api/reminders/{reminder['id']}").json()
    assert shown["last_outcome"] == "sent"
    assert shown["last_message_id"] == message.id
    assert shown["run_count"] == 1
    assert datetime.fromisoformat(shown["next_run_at"]) == due + timedelta(minutes=60)

    # Running again before the next slot, or sweeping, sends nothing more.
    tasks.run(reminder["id"])
    tasks.sweep()
    assert len(sent_to(db, "+48600100601")) == 1
    assert len(runs_of(db, reminder["id"])) == 1


def test_without_a_start_time_the_first_message_goes_out_at_once(
    api: httpx.Client, db: Any
) -> None:
    answer = api.post(
        "/api/reminders",
        json={"to": "+48600100602", "body": "Od razu", "interval_minutes": 15},
    )
    assert answer.status_code == 201, answer.text
    [message] = wait_for(lambda: sent_to(db, "+48600100602"), what="the first reminder")
    assert message.body == "Od razu"
    shown = api.get(f"/api/reminders/{answer.json()['id']}").json()
    start = datetime.fromisoformat(shown["start_at"])
    assert datetime.fromisoformat(shown["next_run_at"]) == start + timedelta(minutes=15)


def test_workers_racing_for_one_slot_send_it_once(db: Any, new_reminder: NewReminder) -> None:
    from relaydesk.core.db import session_scope
    from relaydesk.reminders import service, tasks

    reminder = new_reminder("+48600100603", "Tylko raz")
    set_next_run(reminder["id"], utcnow() - timedelta(minutes=1))
    start = threading.Barrier(4)
    results: list[object] = []

    def worker() -> None:
        start.wait()
        with session_scope() as session:
            results.append(service.run(session, reminder["id"]))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    tasks.sweep()
    assert sum(1 for r in results if r is not None) == 1
    assert len(sent_to(db, "+48600100603")) == 1
    assert len(runs_of(db, reminder["id"])) == 1


def test_after_downtime_one_catch_up_message_not_a_burst(
    api: httpx.Client, db: Any, new_reminder: NewReminder
) -> None:
    from relaydesk.reminders import tasks

    reminder = new_reminder("+48600100604", "Co godzinę", interval_minutes=60)
    # The service was down for five and a half hours: six slots passed.
    due = utcnow() - timedelta(hours=5, minutes=30)
    set_next_run(reminder["id"], due)
    tasks.sweep()  # what a restarted worker does first
    wait_for(lambda: sent_to(db, "+48600100604"), what="the catch-up message")
    tasks.sweep()
    tasks.run(reminder["id"])
    assert len(sent_to(db, "+48600100604")) == 1
    [run] = runs_of(db, reminder["id"])
    assert run.missed_runs == 5
    shown = api.get(f"/api/reminders/{reminder['id']}").json()
    # The cadence holds: the next slot is the next one of the original schedule.
    assert datetime.fromisoformat(shown["next_run_at"]) == due + timedelta(hours=6)


def test_an_opted_out_number_is_skipped_and_the_reminder_says_why(
    api: httpx.Client,
    db: Any,
    new_reminder: NewReminder,
    twilio_post: Callable[..., httpx.Response],
) -> None:
    from relaydesk.reminders import tasks

    reminder = new_reminder("+48600100605", "Promocja")
    params = {"MessageSid": "SM" + secrets.token_hex(16), "To": "+15005550006"}
    twilio_post("/twilio/inbound", {**params, "From": "+48600100605", "Body": "STOP"})
    set_next_run(reminder["id"], utcnow() - timedelta(seconds=1))
    tasks.run(reminder["id"])
    assert sent_to(db, "+48600100605") == []
    [run] = api.get(f"/api/reminders/{reminder['id']}/runs").json()
    assert run["outcome"] == "skipped"
    assert run["reason"] == "opted_out"
    assert run["message_id"] is None
    assert "unsubscribed" in run["detail"]
    shown = api.get(f"/api/reminders/{reminder['id']}").json()
    assert shown["last_outcome"] == "skipped"
    assert shown["last_reason"] == "opted_out"
    assert "unsubscribed" in shown["last_detail"]
    # It stays active: the next slot comes (and sends once the customer texts START).
    assert shown["status"] == "active"
    assert datetime.fromisoformat(shown["next_run_at"]) > utcnow()


def test_a_paused_reminder_sends_nothing_and_resumes_on_its_cadence(
    api: httpx.Client, db: Any, new_reminder: NewReminder
) -> None:
    from relaydesk.reminders import tasks

    reminder = new_reminder("+48600100606", "Pauza", interval_minutes=30)
    rid = reminder["id"]
    assert api.patch(f"/api/reminders/{rid}", json={"enabled": False}).status_code == 200
    due = utcnow() - timedelta(minutes=70)
    set_next_run(rid, due)
    tasks.sweep()
    tasks.run(rid)
    assert sent_to(db, "+48600100606") == []

    resumed = api.patch(f"/api/reminders/{rid}", json={"enabled": True}).json()
    # The slots the pause skipped are not sent: it continues at the next one.
    assert datetime.fromisoformat(resumed["next_run_at"]) == due + timedelta(minutes=90)
    tasks.run(rid)
    assert sent_to(db, "+48600100606") == []

    set_next_run(rid, utcnow() - timedelta(seconds=1))
    tasks.run(rid)
    assert len(sent_to(db, "+48600100606")) == 1


def test_a_new_interval_counts_from_the_last_run(
    api: httpx.Client, db: Any, new_reminder: NewReminder
) -> None:
    from relaydesk.reminders import tasks

    reminder = new_reminder("+48600100607", "Interwał", interval_minutes=600)
    rid = reminder["id"]
    set_next_run(rid, utcnow() - timedelta(seconds=1))
    tasks.run(rid)
    last_run = db.scalar(select(Reminder.last_run_at).where(Reminder.id == rid))
    changed = api.patch(f"/api/reminders/{rid}", json={"interval_minutes": 5}).json()
    assert datetime.fromisoformat(changed["next_run_at"]) == last_run + timedelta(minutes=5)


def test_deleting_a_reminder_keeps_the_messages_it_sent(
    api: httpx.Client, db: Any, new_reminder: NewReminder
) -> None:
    from relaydesk.reminders import tasks

    reminder = new_reminder("+48600100608", "Zostaje w historii")
    set_next_run(reminder["id"], utcnow() - timedelta(seconds=1))
    tasks.run(reminder["id"])
    assert api.delete(f"/api/reminders/{reminder['id']}").status_code == 204
    assert len(sent_to(db, "+48600100608")) == 1
    assert db.scalar(select(func.count()).select_from(ReminderRun)) == 0
