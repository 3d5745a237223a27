"""Background jobs of the automation domain."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from relaydesk.automation import gate, pipeline
from relaydesk.automation import settings as cfg
from relaydesk.automation.models import AutomationRun, RunState
from relaydesk.core.db import session_scope, utcnow
from relaydesk.core.tasks import enqueue, periodic, task
from relaydesk.messaging import hooks
from relaydesk.messaging.models import Message

log = logging.getLogger(__name__)

SWEEP_BATCH = 200
# A pending run is presumed lost this long after its debounce window closed.
LOST_AFTER = timedelta(minutes=1)


@hooks.on_inbound("automation", wants=gate.wants)
def inbound(session: Session, message: Message) -> None:
    """Every new inbound message gets its automation run (decided later, in a job)."""
    pipeline.queue_for(session, message)


@task("automation.run", follows=True)
def run(run_id: int) -> None:
    """Decide and answer one inbound message."""
    pipeline.run(run_id)


@task("automation.resume")
def resume(message_id: int) -> None:
    """The message's files are understood: its waiting answer may go ahead."""
    pipeline.resume(message_id)


@periodic("automation.sweep", minutes="*", at_start=True)
def sweep() -> None:
    """Re-queue runs whose job was lost or whose worker died mid-job (lease expired)."""
    now = utcnow()
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
                    and_(AutomationRun.state == RunState.WORKING, AutomationRun.lease_until < now),
                )
            )
            .order_by(AutomationRun.id)
            .limit(SWEEP_BATCH)
        ).all()
    for run_id in due:
        enqueue("automation.run", run_id)
