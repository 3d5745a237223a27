"""Background jobs of the campaigns domain."""

from __future__ import annotations

from sqlalchemy import or_, select

from relaydesk.campaigns import dispatch as dispatcher
from relaydesk.campaigns.models import Batch, BatchStatus
from relaydesk.core import owners
from relaydesk.core.db import session_scope, utcnow
from relaydesk.core.tasks import BULK, enqueue, periodic, task


@task("campaigns.dispatch", queue=BULK)
def dispatch(batch_id: int) -> None:
    """Send a campaign until it is done, paused or canceled."""
    dispatcher.dispatch(batch_id)


@periodic("campaigns.sweep", minutes="*", at_start=True)
def sweep() -> None:
    """Restart campaigns whose dispatcher died (lease over) and start due scheduled ones."""
    now = utcnow()
    with session_scope(write=False) as session:
        # A dispatcher of a process that is gone from this machine: no need to wait.
        running = session.execute(
            select(Batch.id, Batch.dispatcher).where(
                Batch.status == BatchStatus.PROCESSING, Batch.dispatcher_until >= now
            )
        ).all()
        dead = set(owners.dead_among({owner for _, owner in running}))
        due = [batch_id for batch_id, owner in running if owner in dead]
        due += list(
            session.scalars(
                select(Batch.id).where(
                    or_(
                        (Batch.status == BatchStatus.PROCESSING)
                        & (Batch.dispatcher_until.is_(None) | (Batch.dispatcher_until < now)),
                        (Batch.status == BatchStatus.PENDING)
                        & (Batch.send_at.is_(None) | (Batch.send_at <= now)),
                    )
                )
            )
        )
    for batch_id in due:
        enqueue("campaigns.dispatch", batch_id)
