"""Background tasks of jobs."""

from __future__ import annotations

from relaydesk.core.tasks import BULK, periodic, task
from relaydesk.jobs import service


@task("jobs.run", queue=BULK)
def run(job_id: int) -> None:
    """Run one job."""
    service.run(job_id)


@periodic("jobs.sweep", minutes="*")
def sweep() -> None:
    """Fail jobs whose worker died, re-queue forgotten ones."""
    service.sweep()
