"""Jobs of outgoing webhooks: send what is due; the sweep picks up retries and crashes.

Every transaction that writes deliveries queues `webhooks_out.deliver`; at 1,000
inbound webhooks a second that is many jobs, so one process runs one sender at a time
(it sends SEND_THREADS deliveries at once) and a job that finds it busy only asks it to
look once more before it stops. Other processes (`relaydesk worker`) run their own;
the leases on the rows keep them apart.
"""

from __future__ import annotations

import threading

from relaydesk.core import events
from relaydesk.core.tasks import enqueue, periodic, task
from relaydesk.webhooks_out import sender

# Beyond this a retry is left to the minute sweep rather than a delayed job.
MAX_DELAY = 60.0

_busy = threading.Lock()
_again = threading.Event()


@task(events.DELIVER_JOB)
def deliver() -> None:
    """Send the due deliveries; then wake up again when the next retry is due."""
    if not _busy.acquire(blocking=False):
        _again.set()  # the running sender looks again before it stops
        return
    sent = 0
    try:
        while True:
            _again.clear()
            sent += sender.deliver_due()
            if not _again.is_set():
                break
    finally:
        _busy.release()
    wait = sender.next_due()
    if wait is None or wait > MAX_DELAY:
        return
    if wait == 0 and sent:
        enqueue(events.DELIVER_JOB)  # more is due (the run stopped after RUN_FOR)
    else:
        # A retry later, or rows behind one that another process is sending: look again
        # then, without spinning.
        enqueue(events.DELIVER_JOB, delay=max(wait, 1.0))


@periodic("webhooks_out.sweep", at_start=True)
def sweep() -> None:
    """Every minute and at start: retries whose time came, rows a crashed worker held;
    and housekeeping (rows of deleted endpoints, deliveries older than 30 days)."""
    sender.drop_orphans()
    sender.prune()
    deliver()
