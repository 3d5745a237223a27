"""Jobs of outgoing webhooks: send what is due; the sweep picks up retries and crashes.

Every transaction that writes deliveries asks for a run once it commits: when this
process's sender is running it only looks once more, otherwise `webhooks_out.deliver`
is queued. One process runs one sender at a time (it sends SEND_THREADS deliveries at
once); other processes (`relaydesk worker`) run their own, and the leases on the rows
keep them apart.
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


def _wake() -> bool:
    """A commit wrote deliveries: True when this process's running sender will see them."""
    if _busy.locked():
        _again.set()
        return True
    return False


events.on_local_sender(_wake)


@task(events.DELIVER_JOB)
def deliver() -> None:
    """Send the due deliveries; then wake up again when the next retry is due.

    A commit that finds the sender running only asks it to look again (`_wake`); the
    rare wake-up that comes just as it stops is caught by the next retry check (at most a
    second later) or the minute sweep.
    """
    sent = 0
    while True:
        if not _busy.acquire(blocking=False):
            _again.set()  # the running sender looks again before it stops
            return
        try:
            while True:
                _again.clear()
                sent += sender.deliver_due()
                if not _again.is_set():
                    break
        finally:
            _busy.release()
        if not _again.is_set():
            break
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
