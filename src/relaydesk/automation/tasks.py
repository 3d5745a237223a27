"""Background jobs of the automation domain."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from relaydesk.automation import gate, pipeline
from relaydesk.automation import settings as cfg
from relaydesk.automation.models import AutomationRun, RunState
from relaydesk.core import owners
from relaydesk.core.db import session_scope, utcnow
from relaydesk.core.tasks import enqueue, periodic, task
from relaydesk.messaging import hooks
from relaydesk.messaging.models import Message

log = logging.getLogger(__name__)

SWEEP_BATCH = 200
SWEEP_CHUNK = 25
# A pending run is presumed lost this long after its debounce window closed.
LOST_AFTER = timedelta(minutes=1)


def inbound_many(session: Session, messages: Sequence[Message | hooks.NewInbound]) -> None:
    """`inbound` for a batch of messages, their runs created set-wise: in the follow-up
    job, or in the transaction that stores them (then their job is the first they need)."""
    pipeline.queue_for_many(session, messages)


@hooks.on_inbound("automation", wants=gate.wants, many=inbound_many, at_store=inbound_many)
def inbound(session: Session, message: Message) -> None:
    """Every new inbound message gets its automation run (decided later, in a job)."""
    pipeline.queue_for(session, message)


@task("automation.run", follows=True)
def run(run_id: int) -> None:
    """Decide and answer one inbound message (a model's answer in the model threads)."""
    pipeline.run(run_id, concurrent=True)


@task("automation.runs", follows=True)
def runs(run_ids: list[int]) -> None:
    """`run` for the runs that a batch of webhooks queued (the database work set-wise)."""
    if len(run_ids) == 1:
        pipeline.run(run_ids[0], concurrent=True)
    else:
        pipeline.run_many(run_ids, concurrent=True)


@task("automation.resume")
def resume(message_id: int) -> None:
    """The message's files are understood: its waiting answer may go ahead."""
    pipeline.resume(message_id)


@periodic("automation.sweep", minutes="*", at_start=True)
def sweep() -> None:
    """Re-queue runs whose job was lost or whose worker died mid-job (lease expired, or
    its process provably gone: then at once, not after the lease)."""
    now = utcnow()
    with session_scope() as session:
        release_abandoned(session, now)
    with session_scope(write=False) as session:
        debounce = timedelta(seconds=cfg.read_rules(session).debounce_seconds)
        due = session.scalars(
            select(AutomationRun.id)
            .where(
                or_(
                    and_(
                        AutomationRun.state == RunState.PENDING,
                        AutomationRun.created_at < now - debounce - LOST_AFTER,
                    ),
                    and_(AutomationRun.state == RunState.WORKING, AutomationRun.lease_until <= now),
                )
            )
            .order_by(AutomationRun.id)
            .limit(SWEEP_BATCH)
        ).all()
    # In jobs of SWEEP_CHUNK runs (set-wise, as a batch of webhooks' answers), spread
    # over the free worker threads.
    for start in range(0, len(due), SWEEP_CHUNK):
        enqueue("automation.runs", list(due[start : start + SWEEP_CHUNK]))


def release_abandoned(session: Session, now: datetime) -> int:
    """End the leases of runs claimed by processes on this machine that are gone.

    Their model calls and answers died with them; the claim (its token) stays, so a
    process that was only slow still cannot store a second answer.
    """
    dead = owners.dead_holders(
        session, AutomationRun.claimed_by, AutomationRun.state == RunState.WORKING
    )
    if not dead:
        return 0
    released = session.execute(
        update(AutomationRun)
        .where(AutomationRun.state == RunState.WORKING, AutomationRun.claimed_by.in_(dead))
        .values(lease_until=now, claimed_by=None)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if released:
        log.warning("took over %s automation run(s) of processes that are gone", released)
    return int(released or 0)
