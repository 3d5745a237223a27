"""Background jobs of the reminders domain."""

from __future__ import annotations

from relaydesk.core.db import session_scope, utcnow
from relaydesk.core.tasks import enqueue, periodic, task
from relaydesk.reminders import service

SWEEP_BATCH = 500


@task("reminders.run")
def run(reminder_id: int) -> None:
    """Send a reminder's due message (a no-op when it is not due or already sent)."""
    with session_scope() as session:
        service.run(session, reminder_id)


@periodic("reminders.sweep", minutes="*", at_start=True)
def sweep() -> None:
    """Queue a run for every due reminder: the safety net under each one's delayed job.

    After downtime each overdue reminder runs once (one catch-up message).
    """
    with session_scope(write=False) as session:
        due = service.due_ids(session, utcnow(), SWEEP_BATCH)
    for reminder_id in due:
        enqueue("reminders.run", reminder_id)
