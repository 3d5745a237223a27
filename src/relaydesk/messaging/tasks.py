"""Background jobs of the messaging domain."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update

from relaydesk.core.db import session_scope, utcnow
from relaydesk.core.tasks import BULK, enqueue, periodic, task, yield_to_live
from relaydesk.messaging import delivery, hooks, reconcile, search, spool, states
from relaydesk.messaging.models import Message, MessageStatus

log = logging.getLogger(__name__)

SWEEP_BATCH = 500
# The search indexer works in turns of at most INDEX_TURN seconds (other bulk jobs go in
# between) and comes back after INDEX_AGAIN seconds while there is something to index.
INDEX_TURN = 5.0
INDEX_AGAIN = 2.0


@task("messaging.deliver", follows=True, last=True)
def deliver(message_id: int) -> None:
    """Submit a stored outbound message to Twilio (retries schedule themselves); the
    call is made in the process's call threads, not this worker thread."""
    delivery.deliver_soon(message_id)


@task("messaging.inbound_received")
def inbound_received(message_ids: list[int]) -> None:
    """Run follow-up handlers once per new inbound message."""
    handlers = hooks.inbound_handlers()
    with session_scope() as session:
        # Claim the whole batch at once; ids another worker already took drop out.
        claimed = session.scalars(
            update(Message)
            .where(Message.id.in_(message_ids), Message.processed_at.is_(None))
            .values(processed_at=utcnow())
            .returning(Message.id)
            .execution_options(synchronize_session=False)
        ).all()
        if not handlers or not claimed:
            return
        messages = session.scalars(
            select(Message).where(Message.id.in_(claimed)).order_by(Message.id)
        ).all()
        # Handler by handler (a message's files are recorded before its answer is queued),
        # the whole batch at once where the handler can.
        for name, handler in handlers:
            many = hooks.batch_handler(name)
            if many is not None and len(messages) > 1:
                try:
                    with session.begin_nested():
                        many(session, list(messages))
                    continue
                except Exception:
                    log.exception("inbound handler %s failed for a batch; one by one", name)
            for message in messages:
                try:
                    with session.begin_nested():
                        handler(session, message)
                except Exception:
                    log.exception("inbound handler %s failed for message %s", name, message.id)


@periodic("messaging.sweep", minutes="*", at_start=True)
def sweep() -> None:
    """Re-queue work whose job was lost (crash between commit and enqueue, or a restart)."""
    with session_scope() as session:
        delivery.release_abandoned(session)
    now = utcnow()
    with session_scope(write=False) as session:
        due = session.scalars(
            select(Message.id)
            .where(Message.status == MessageStatus.PENDING, Message.next_attempt_at <= now)
            .order_by(Message.next_attempt_at)
            .limit(SWEEP_BATCH)
        ).all()
        # Scheduled messages whose delayed job was lost (or ran before their time).
        scheduled = session.scalars(
            select(Message.id)
            .where(Message.status == MessageStatus.SCHEDULED, Message.scheduled_at <= now)
            .order_by(Message.scheduled_at)
            .limit(SWEEP_BATCH)
        ).all()
        stale = session.scalars(
            select(Message.id)
            .where(
                Message.processed_at.is_(None),
                Message.direction == "inbound",
                Message.created_at < now - timedelta(minutes=1),
            )
            .order_by(Message.id)
            .limit(SWEEP_BATCH)
        ).all()
    for message_id in [*due, *scheduled]:
        enqueue("messaging.deliver", message_id)
    if stale:
        enqueue("messaging.inbound_received", list(stale))
    with session_scope() as session:
        delivery.replay_orphan_events(session)
    spool.replay()


@periodic("messaging.check_statuses", minutes="*", at_start=True)
def check_statuses() -> None:
    """Ask Twilio for the statuses of sent messages that never became final."""
    reconcile.check_due(delivery.get_gateway())


@periodic("messaging.wake_snoozed", minutes="*", at_start=True)
def wake_snoozed() -> None:
    """Open the snoozed conversations whose time has come (each with an event)."""
    with session_scope() as session:
        woken = states.wake_snoozed(session)
    if woken:
        log.info("%d snoozed conversation(s) opened again", woken)


@task("search.index", queue=BULK)
def index_search() -> None:
    """Bring the search index up to date; queued again while there is work."""
    done = search.catch_up(budget=INDEX_TURN, yield_to=yield_to_live)
    if done.behind:
        enqueue("search.index")
    elif done.indexed:
        enqueue("search.index", delay=INDEX_AGAIN)


@periodic("search.sweep", minutes="*", queue=BULK, at_start=True)
def search_sweep() -> None:
    """Start the indexer after a (re)start and whenever it has stopped for lack of work."""
    index_search()
