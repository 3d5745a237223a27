"""Creating, running and reading jobs.

A domain registers a runner per kind (`@runner("news.scrape")`); `start` stores a job and
queues it; the worker runs it and keeps its progress row current, at most a few writes
a second. One job of a kind runs at a time (a second scrape while one runs is refused
with the running one's id). A job whose worker died (no heartbeat for a while) is
marked failed by the sweep, with a message saying to start it again.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from relaydesk.core.db import session_scope, utcnow
from relaydesk.core.errors import Conflict, NotFound, RelaydeskError
from relaydesk.core.i18n import N_
from relaydesk.core.tasks import enqueue_after_commit, stopping, yield_to_live
from relaydesk.jobs.models import Job, JobStatus

log = logging.getLogger(__name__)

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
HEARTBEAT_SECONDS = 0.5  # progress is written at most this often
STALE_AFTER = timedelta(minutes=5)  # a running job silent this long lost its worker


# A job handed back because its worker stopped runs again this long after, in the next
# start of a worker (a job queued while workers stop is not taken by them).
AGAIN_AFTER_STOP_SECONDS = 5.0


class Stopped(Exception):
    """The worker is stopping: the job goes back to the queue (raised by `Progress`)."""


class Progress:
    """What a runner calls to report how far it got (written at most twice a second).

    Between two steps it also lets waiting live jobs go first and, when the worker is
    asked to stop, ends a job that may start over (`Stopped`, see `runner`): it goes back
    to the queue and starts again after the restart, instead of holding the stop for
    minutes (an index build).
    """

    def __init__(self, job_id: int, again_after_stop: bool = False) -> None:
        self.job_id = job_id
        self.again_after_stop = again_after_stop
        self._last = 0.0

    def __call__(self, done: int, total: int, message: str = "", *, force: bool = False) -> None:
        if self.again_after_stop and stopping():
            raise Stopped
        # Between two steps of a long job (scraping, index builds, syncs), live jobs that
        # wait for a worker go first.
        yield_to_live()
        now = time.monotonic()
        if not force and now - self._last < HEARTBEAT_SECONDS and done < total:
            return
        self._last = now
        with session_scope() as session:
            session.execute(
                update(Job)
                .where(Job.id == self.job_id, Job.status == JobStatus.RUNNING)
                .values(done=done, total=total, message=message[:500], heartbeat_at=utcnow())
                .execution_options(synchronize_session=False)
            )


Runner = Callable[[dict[str, Any], Progress], dict[str, Any]]
_RUNNERS: dict[str, Runner] = {}
_AGAIN_AFTER_STOP: set[str] = set()


def runner(kind: str, *, again_after_stop: bool = False) -> Callable[[Runner], Runner]:
    """Register the function that runs jobs of `kind`; it returns the job's result.

    `again_after_stop`: a job that may simply start over (a scrape, an index build) ends
    at its next step when its worker stops, and runs again after the restart. Other
    runners see `stopping()` themselves (a voice-bot sync keeps its cursors).
    """

    def decorator(func: Runner) -> Runner:
        _RUNNERS[kind] = func
        _AGAIN_AFTER_STOP.discard(kind)
        if again_after_stop:
            _AGAIN_AFTER_STOP.add(kind)
        return func

    return decorator


def start(session: Session, kind: str, params: dict[str, Any], actor: str | None) -> Job:
    """Store a job and queue it after commit; Conflict while one of its kind is active."""
    running = session.scalar(
        select(Job.id).where(Job.kind == kind, Job.status.in_(ACTIVE)).order_by(Job.id).limit(1)
    )
    if running is not None:
        raise Conflict(
            N_("A %(kind)s job is already under way (job %(job)s); wait for it to finish"),
            params={"kind": kind, "job": running},
            job_id=running,
        )
    job = Job(
        kind=kind, status=JobStatus.QUEUED, params=params, created_by=actor, created_at=utcnow()
    )
    session.add(job)
    session.flush()
    enqueue_after_commit(session, "jobs.run", job.id)
    return job


def get(session: Session, job_id: int) -> Job:
    """One job; NotFound otherwise."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(N_("Job %(id)s does not exist"), params={"id": job_id})
    return job


def latest(session: Session, kind: str | None = None, limit: int = 20) -> list[Job]:
    """The newest jobs (of one kind)."""
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if kind:
        query = query.where(Job.kind == kind)
    return list(session.scalars(query))


def view(job: Job) -> dict[str, Any]:
    """A job as the API shows it."""
    percent = round(job.done * 100 / job.total, 1) if job.total else None
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "done": job.done,
        "total": job.total,
        "percent": 100.0 if job.status == JobStatus.DONE else percent,
        "message": job.message,
        "result": job.result,
        "error": job.error,
        "created_by": job.created_by,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


def run(job_id: int) -> None:
    """Run a queued job to its end (called by the worker)."""
    now = utcnow()
    with session_scope() as session:
        taken = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
            .values(status=JobStatus.RUNNING, started_at=now, heartbeat_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if not taken:
            return
        job = session.get(Job, job_id)
        assert job is not None
        kind, params = job.kind, dict(job.params or {})
    func = _RUNNERS.get(kind)
    result: dict[str, Any] | None = None
    error: str | None = None
    try:
        if func is None:
            raise RelaydeskError(f"No runner for jobs of kind {kind!r}")
        result = func(params, Progress(job_id, kind in _AGAIN_AFTER_STOP))
    except Stopped:
        _hand_back(job_id, kind)
        return
    except RelaydeskError as exc:
        error = exc.message
    except Exception as exc:
        log.error("job %s (%s) failed:\n%s", job_id, kind, traceback.format_exc())
        error = f"{exc.__class__.__name__}: {exc}"[:1000]
    with session_scope() as session:
        values: dict[str, Any] = {
            "status": JobStatus.FAILED if error else JobStatus.DONE,
            "error": error,
            "result": result,
            "finished_at": utcnow(),
            "heartbeat_at": utcnow(),
        }
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def _hand_back(job_id: int, kind: str) -> None:
    """Queue the job again: its worker stopped while it ran (it starts from the beginning;
    an index build keeps the vectors of the index it replaces)."""
    with session_scope() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.RUNNING)
            .values(
                status=JobStatus.QUEUED,
                started_at=None,
                done=0,
                total=0,
                message=N_("stopped with the server; it starts again after the restart"),
                heartbeat_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        enqueue_after_commit(session, "jobs.run", job_id, delay=AGAIN_AFTER_STOP_SECONDS)
    log.info("job %s (%s) stopped with its worker; it runs again after the restart", job_id, kind)


def sweep() -> int:
    """Fail running jobs whose worker died; queue queued ones again. Returns jobs touched."""
    now = utcnow()
    with session_scope() as session:
        stale = session.execute(
            update(Job)
            .where(Job.status == JobStatus.RUNNING, Job.heartbeat_at < now - STALE_AFTER)
            .values(
                status=JobStatus.FAILED,
                error="Interrupted (the server stopped or restarted while it ran); start it again",
                finished_at=now,
            )
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        waiting = list(
            session.scalars(
                select(Job.id).where(
                    Job.status == JobStatus.QUEUED, Job.created_at < now - STALE_AFTER
                )
            )
        )
        for job_id in waiting:
            enqueue_after_commit(session, "jobs.run", job_id)
    return int(stale or 0) + len(waiting)
