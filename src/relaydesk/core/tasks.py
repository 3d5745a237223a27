"""Background jobs on huey: SQLite file by default, Redis when REDIS_URL is set.

Domains declare jobs with `@task("domain.event")` in their `tasks.py`; jobs take ids,
never objects. `enqueue_after_commit(session, ...)` queues a job only once the
session's transaction has committed, and forgets it on rollback. The sweeps (periodic
jobs declared for every minute) run every SWEEP_SECONDS, a minute by default.
"""

from __future__ import annotations

import functools
import importlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer, Scheduler
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from relaydesk.core import domains
from relaydesk.core.config import get_settings
from relaydesk.core.heap import settle_after_startup

log = logging.getLogger(__name__)


@dataclass
class _TaskSpec:
    func: Callable[..., Any]
    retries: int = 0
    retry_delay: int = 0
    periodic: Any = None
    every_minute: bool = False  # a sweep: runs every SWEEP_SECONDS instead
    at_start: bool = False  # also queued when a worker starts (recovery after a crash)


@dataclass
class _Registry:
    specs: dict[str, _TaskSpec] = field(default_factory=dict)
    wrappers: dict[str, Any] = field(default_factory=dict)
    huey: Huey | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    running: Counter[str] = field(default_factory=Counter)  # jobs running in this process
    running_lock: threading.Lock = field(default_factory=threading.Lock)


_registry = _Registry()


def task(name: str, *, retries: int = 0, retry_delay: int = 0) -> Callable[[Any], Any]:
    """Declare a background job called `name` (e.g. "messaging.deliver")."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        _registry.specs[name] = _TaskSpec(func, retries, retry_delay)
        return func

    return decorator


def periodic(
    name: str, *, minutes: str = "*", hours: str = "*", at_start: bool = False
) -> Callable[[Any], Any]:
    """Declare a job that runs on a cron-like schedule (UTC); every minute is a sweep.

    `at_start` also queues it when a worker starts, so a sweep that recovers interrupted
    work runs right after a (re)start instead of at the next minute.
    """

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        _registry.specs[name] = _TaskSpec(
            func,
            periodic=crontab(minute=minutes, hour=hours),
            every_minute=minutes == "*" and hours == "*",
            at_start=at_start,
        )
        return func

    return decorator


def _counted(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` as job `name`, listed by `running_jobs()` while it runs."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        with _registry.running_lock:
            _registry.running[name] += 1
        try:
            return func(*args, **kwargs)
        finally:
            with _registry.running_lock:
                _registry.running[name] -= 1

    return run


def running_jobs() -> list[str]:
    """The names of the jobs this process's worker threads are running at this moment."""
    with _registry.running_lock:
        return sorted(_registry.running.elements())


def _build_huey() -> Huey:
    settings = get_settings()
    if settings.redis_url:
        huey: Huey = RedisHuey("relaydesk", url=settings.redis_url, utc=True)
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey(
            "relaydesk", filename=str(settings.data_dir / "queue.db"), utc=True, timeout=10
        )
    for module in domains.task_modules():
        importlib.import_module(module)
    _registry.wrappers.clear()
    for name, spec in _registry.specs.items():
        func = _counted(name, spec.func)
        if spec.periodic is not None:
            wrapper = huey.periodic_task(spec.periodic, name=name)(func)
        else:
            wrapper = huey.task(name=name, retries=spec.retries, retry_delay=spec.retry_delay)(func)
        _registry.wrappers[name] = wrapper
    return huey


def get_huey() -> Huey:
    """The process-wide huey instance with every relaydesk task registered."""
    with _registry.lock:
        if _registry.huey is None:
            _registry.huey = _build_huey()
        return _registry.huey


def enqueue(name: str, *args: Any, delay: float | None = None) -> None:
    """Queue job `name` now (use enqueue_after_commit inside a transaction)."""
    get_huey()
    wrapper = _registry.wrappers[name]
    if delay:
        wrapper.schedule(args=args, delay=delay)
    else:
        wrapper(*args)


@dataclass
class _AfterCommit:
    """A job waiting for its transaction; `owner` is the savepoint it was queued in."""

    name: str
    args: tuple[Any, ...]
    delay: float | None
    owner: SessionTransaction | None


def enqueue_after_commit(
    session: Session, name: str, *args: Any, delay: float | None = None
) -> None:
    """Queue a job once `session` really commits; dropped if its work is rolled back.

    Inside a savepoint (`session.begin_nested()`) the job waits for the outer commit:
    SQLAlchemy reports a released savepoint as a commit too, and a job queued then could
    run before its rows are visible to other connections (on PostgreSQL it found a
    message's files missing and left them pending). A savepoint rolled back drops only
    the jobs queued inside it.
    """
    pending: list[_AfterCommit] = session.info.setdefault("relaydesk_jobs", [])
    pending.append(_AfterCommit(name, args, delay, session.get_nested_transaction()))


@event.listens_for(Session, "after_commit")
def _flush_jobs(session: Session) -> None:
    savepoint = session.get_nested_transaction()
    if savepoint is not None:
        # A savepoint was released: its jobs now belong to the enclosing transaction.
        parent = savepoint.parent
        outer = parent if parent is not None and parent.nested else None
        for job in session.info.get("relaydesk_jobs", ()):
            if job.owner is savepoint:
                job.owner = outer
        return
    for job in session.info.pop("relaydesk_jobs", None) or ():
        try:
            enqueue(job.name, *job.args, delay=job.delay)
        except Exception:
            # The rows are committed; the periodic sweeps pick the work up again.
            log.exception("could not enqueue %s%s; the sweeper will retry", job.name, job.args)


@event.listens_for(Session, "after_rollback")
def _drop_jobs(session: Session) -> None:
    savepoint = session.get_nested_transaction()
    if savepoint is None:
        session.info.pop("relaydesk_jobs", None)
        return
    pending: list[_AfterCommit] = session.info.get("relaydesk_jobs", [])
    pending[:] = [job for job in pending if job.owner is not savepoint]


class SweepScheduler(Scheduler):  # type: ignore[misc]
    """huey's scheduler, which queues the sweeps every SWEEP_SECONDS instead of every minute.

    Every other periodic job keeps its crontab. At the default (60 seconds) it is huey's
    scheduler unchanged. Below that (tests that must not wait a minute for a crash to be
    recovered) the sweeps are queued from this loop, which huey runs every second.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sweep_seconds = get_settings().sweep_seconds
        self._next_sweep = time.monotonic() + self.sweep_seconds

    def _faster(self) -> bool:
        return bool(self.periodic) and self.sweep_seconds < 60

    def loop(self, now: Any = None) -> None:
        if self._faster() and self._next_sweep <= time.monotonic():
            self._next_sweep = time.monotonic() + self.sweep_seconds
            for name, spec in _registry.specs.items():
                if spec.every_minute:
                    try:
                        enqueue(name)
                    except Exception:
                        log.exception("could not queue the sweep %s", name)
        super().loop(now)

    def enqueue_periodic_tasks(self, now: Any) -> None:
        if not self._faster():
            super().enqueue_periodic_tasks(now)
            return
        for task in self.huey.read_periodic(now):
            spec = _registry.specs.get(task.name)
            if spec is not None and spec.every_minute:
                continue  # queued by loop() every SWEEP_SECONDS
            try:
                self.huey.enqueue(task)
            except Exception:
                log.exception("could not queue the periodic job %s", task.name)


class WorkerConsumer(Consumer):  # type: ignore[misc]
    """huey's consumer with the sweep scheduler (`relaydesk worker`)."""

    scheduler_class = SweepScheduler


class EmbeddedConsumer(WorkerConsumer):
    """A huey consumer that runs inside the web server and leaves its signals alone."""

    def _set_signal_handlers(self) -> None:
        return None


_consumers: list[Consumer] = []


def stopping() -> bool:
    """True once this process's worker was asked to stop (long jobs should return)."""
    return any(c.stop_flag.is_set() for c in _consumers)


def start_embedded_worker() -> EmbeddedConsumer:
    """Start worker threads and the scheduler in this process."""
    consumer = EmbeddedConsumer(
        get_huey(),
        workers=get_settings().worker_threads,
        worker_type="thread",
        initial_delay=0.05,
        max_delay=1.0,
        check_worker_health=False,
    )
    _consumers.append(consumer)
    consumer.start()
    _sweep_soon()
    return consumer


def _sweep_soon() -> None:
    """Recover interrupted work right after a (re)start, not at the next minute."""
    for name, spec in list(_registry.specs.items()):
        if spec.at_start:
            try:
                enqueue(name)
            except Exception:
                log.exception("could not queue the start-up sweep %s", name)


def run_worker() -> None:
    """Run a standalone consumer until interrupted (`relaydesk worker`)."""
    consumer = WorkerConsumer(
        get_huey(),
        workers=get_settings().worker_threads,
        worker_type="thread",
        initial_delay=0.05,
        max_delay=1.0,
    )
    _sweep_soon()
    _consumers.append(consumer)
    settle_after_startup()
    consumer.run()
