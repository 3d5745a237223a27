"""Background jobs on huey: SQLite files by default, Redis when REDIS_URL is set.

Domains declare jobs with `@task("domain.event")` in their `tasks.py`; jobs take ids,
never objects. `enqueue_after_commit(session, ...)` queues a job only once the
session's transaction has committed, and forgets it on rollback. The sweeps (periodic
jobs declared for every minute) run every SWEEP_SECONDS, a minute by default.

Two queues keep live traffic ahead of bulk work. `live` (the default) holds what a
customer or an operator waits for: inbound follow-ups, automatic answers, operator
sends, reminders, and the sweeps. `bulk` holds the long jobs: campaign dispatch, index
builds and scraping, voice-bot syncs, digests, media processing. Each queue has its own
worker threads (WORKER_THREADS, BULK_WORKER_THREADS), so a 10,000-recipient campaign or
an index build never delays an answer; one process runs both by default, and
`relaydesk worker --queue live|bulk` runs one pool on its own machine.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import redis
from huey import Huey, PriorityRedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer, Scheduler, Worker
from redis.exceptions import RedisError, WatchError
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from relaydesk.core import domains, metrics
from relaydesk.core.config import get_settings
from relaydesk.core.heap import settle_after_startup

log = logging.getLogger(__name__)


LIVE = "live"
BULK = "bulk"
QUEUES = (LIVE, BULK)


@dataclass
class _TaskSpec:
    func: Callable[..., Any]
    queue: str = LIVE
    retries: int = 0
    retry_delay: int = 0
    periodic: Any = None
    every_minute: bool = False  # a sweep: runs every SWEEP_SECONDS instead
    at_start: bool = False  # also queued when a worker starts (recovery after a crash)
    follows: bool = False  # queued by a live job: run next in its thread (see `task`)
    last: bool = False  # behind the queue's other jobs where the queue can (see `task`)


@dataclass
class _Registry:
    specs: dict[str, _TaskSpec] = field(default_factory=dict)
    # (queue, name) -> huey's task wrapper: a one-off job can run on either queue.
    wrappers: dict[tuple[str, str], Any] = field(default_factory=dict)
    hueys: dict[str, Huey] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    running: Counter[str] = field(default_factory=Counter)  # jobs running in this process
    running_lock: threading.Lock = field(default_factory=threading.Lock)
    # (queue, name) -> the counted function itself, for jobs that follow in a thread.
    counted: dict[tuple[str, str], Callable[..., Any]] = field(default_factory=dict)


_registry = _Registry()


def task(
    name: str,
    *,
    queue: str = LIVE,
    retries: int = 0,
    retry_delay: int = 0,
    follows: bool = False,
    last: bool = False,
) -> Callable[[Any], Any]:
    """Declare a background job called `name` (e.g. "messaging.deliver") on `queue`.

    `follows`: when a live job's commit queues this one to run now, the same worker
    thread runs it right after that job (one such job at a time) instead of handing it
    to the queue, so the next step of a customer's answer does not wait for a queue hop
    (under load, for CPU, the hop costs more than the step). Its rows are committed
    before, so a process that dies in between leaves work the sweeps find. A follower
    that fails is logged, as huey does with a job without retries (`follows` takes none).

    `last`: queued behind the jobs of other kinds waiting on the queue (a message that
    comes due waits for the answers to customers who just wrote), in order among its
    own kind. Both queues keep priorities: SQLite's (the default) in its table, Redis's
    as a sorted set (huey's PriorityRedisHuey).
    """

    if follows and retries:
        raise ValueError(f"{name}: a job that follows in a thread has no retries")

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        _registry.specs[name] = _TaskSpec(
            func, queue, retries, retry_delay, follows=follows, last=last
        )
        return func

    return decorator


def periodic(
    name: str, *, minutes: str = "*", hours: str = "*", queue: str = LIVE, at_start: bool = False
) -> Callable[[Any], Any]:
    """Declare a job that runs on a cron-like schedule (UTC); every minute is a sweep.

    `at_start` also queues it when a worker starts, so a sweep that recovers interrupted
    work runs right after a (re)start instead of at the next minute. A periodic job runs
    on its own queue only, scheduled by that queue's workers.
    """

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        _registry.specs[name] = _TaskSpec(
            func,
            queue=queue,
            periodic=crontab(minute=minutes, hour=hours),
            every_minute=minutes == "*" and hours == "*",
            at_start=at_start,
        )
        return func

    return decorator


def _counted(name: str, queue: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` as job `name`, listed by `running_jobs()` while it runs and counted.

    `enqueue` passes the time the job became due as `queued_at` (a job queued by an
    older version, or by huey's scheduler, has none); it is measured, not passed on.
    """
    waited = metrics.JOB_WAIT_SECONDS.labels(queue)
    ok, failed = metrics.JOBS.labels(name, "ok"), metrics.JOBS.labels(name, "error")

    @functools.wraps(func)
    def run(*args: Any, queued_at: float | None = None, **kwargs: Any) -> Any:
        if queue == BULK:
            _lower_priority()
        if queued_at is not None:
            waited.observe(max(time.time() - queued_at, 0.0))
        # The outermost live job of this thread collects the jobs that follow it.
        leads = queue == LIVE and getattr(_followers, "jobs", None) is None
        if leads:
            _followers.jobs = []
        with _registry.running_lock:
            _registry.running[name] += 1
        try:
            try:
                result = func(*args, **kwargs)
            except BaseException:
                failed.inc()
                raise
            finally:
                if leads:
                    _run_followers()
        finally:
            with _registry.running_lock:
                _registry.running[name] -= 1
        ok.inc()
        return result

    return run


_followers = threading.local()  # .jobs: (name, args) queued by this thread's live job


def _run_followers() -> None:
    """Run the jobs the current live job queued to follow it, and theirs, in order."""
    jobs: list[tuple[str, tuple[Any, ...]]] = _followers.jobs
    try:
        while jobs:
            name, args = jobs.pop(0)
            try:
                _registry.counted[LIVE, name](*args, queued_at=time.time())
            except Exception:
                # As huey does with a failed job that has no retries; the sweeps recover.
                log.exception("job %s%s failed", name, args)
    finally:
        # Whatever is left (the thread is being torn down) goes to the queue.
        for name, args in jobs:
            with contextlib.suppress(Exception):
                _registry.wrappers[LIVE, name](*args, queued_at=time.time())
        _followers.jobs = None


def _follows(name: str, queue: str, delay: float | None) -> bool:
    """True when job `name`, queued now after a commit, runs next in this thread.

    One follower waits at a time: of the answers to a batch of webhooks, the first runs
    here and the others go to the queue, so that other threads take them at once (a
    model's answer takes its time; they must not wait for each other).
    """
    jobs = getattr(_followers, "jobs", None)
    return (
        jobs is not None
        and not jobs
        and not delay
        and queue == LIVE
        and _registry.specs[name].follows
    )


# Bulk work steps back for live work: its threads run at a lower CPU priority (the
# native thread pools they start, such as an embedder's or Whisper's, inherit it), and
# long bulk work asks `yield_to_live()` between its steps.
BULK_NICE = 10
LIVE_CHECK_SECONDS = 0.05  # how stale the "live jobs are waiting" answer may be
_bulk_thread = threading.local()
_live_seen: list[float] = [0.0, 0.0]  # [checked at (monotonic), waiting then (0/1)]


def _lower_priority() -> None:
    """Run this (bulk) worker thread at BULK_NICE, once per thread; Linux only."""
    if getattr(_bulk_thread, "niced", False):
        return
    _bulk_thread.niced = True
    # Not Linux (per-thread priorities), or not permitted: bulk work just runs as it is.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BULK_NICE)


def live_waiting() -> bool:
    """True when live jobs wait in their queue (cached for LIVE_CHECK_SECONDS)."""
    now = time.monotonic()
    if now - _live_seen[0] >= LIVE_CHECK_SECONDS:
        try:
            waiting = get_huey(LIVE).pending_count() > 0
        except Exception:
            waiting = False  # the queue is unreadable: never hold bulk work for it
        _live_seen[0], _live_seen[1] = now, float(waiting)
    return bool(_live_seen[1])


def yield_to_live(limit: float = 2.0) -> None:
    """Let waiting live jobs go first: sleep while any wait, at most `limit` seconds."""
    deadline = time.monotonic() + limit
    while live_waiting() and time.monotonic() < deadline:
        time.sleep(LIVE_CHECK_SECONDS / 2)


def handed_off(name: str) -> Callable[[], None]:
    """Count work that job `name` handed to another thread (a Twilio call) as the job
    still running, until the function returned is called (exactly once)."""
    with _registry.running_lock:
        _registry.running[name] += 1

    def done() -> None:
        with _registry.running_lock:
            _registry.running[name] -= 1

    return done


def running_jobs() -> list[str]:
    """The names of the jobs this process's worker threads are running at this moment."""
    with _registry.running_lock:
        return sorted(_registry.running.elements())


# huey's name per queue. The live queue keeps the names of the single queue before the
# split, so jobs queued by an older version still run after an upgrade.
_HUEY_NAMES = {LIVE: "relaydesk", BULK: "relaydesk-bulk"}
LAST_PRIORITY = -1  # huey runs higher priorities first; every other job has 0
_QUEUE_NAMED = {name: queue for queue, name in _HUEY_NAMES.items()}


def _new_huey(queue: str) -> Huey:
    settings = get_settings()
    name = _HUEY_NAMES[queue]
    if settings.redis_url:
        huey = PriorityRedisHuey(name, url=settings.redis_url, utc=True)
        _queue_as_sorted_set(settings.redis_url, huey.storage.queue_key)
        return huey
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    filename = "queue.db" if queue == LIVE else f"queue-{queue}.db"
    return SqliteHuey(name, filename=str(settings.data_dir / filename), utc=True, timeout=10)


def _queue_as_sorted_set(url: str, key: str) -> None:
    """Turn a Redis queue kept as a list (relaydesk before priorities: huey's
    RedisHuey) into the sorted set PriorityRedisHuey keeps, its jobs in their order and
    ahead of any queued from now on. Once, at the first start after the upgrade; every
    process of the installation must run the new version (an old one would push to a
    list again)."""
    # Its own client with short timeouts: an unreachable Redis must not hold the start.
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
    with client, client.pipeline() as pipe:
        while True:
            try:
                pipe.watch(key)  # type: ignore[no-untyped-call]
                if pipe.type(key) not in (b"list", "list"):
                    return
                # LPUSHed, taken from the right: the newest job first
                newest_first = cast(list[bytes], pipe.lrange(key, 0, -1))
                # huey's member: 8 bytes of enqueue time (microseconds) + the job
                start = int(time.time() * 1e6) - len(newest_first) - 1
                members = {
                    struct.pack(">Q", start + i) + job: 0
                    for i, job in enumerate(reversed(newest_first))
                }
                pipe.multi()
                pipe.delete(key)
                pipe.zadd(key, members)
                pipe.execute()
                log.warning(
                    "queue %s: %d queued job(s) moved to its priority queue", key, len(members)
                )
                return
            except WatchError:
                continue
            except RedisError as exc:  # down at start: the next start tries again
                log.warning("queue %s: could not check its Redis key (%s)", key, exc)
                return


def _build_hueys() -> dict[str, Huey]:
    hueys = {queue: _new_huey(queue) for queue in QUEUES}
    for module in domains.task_modules():
        importlib.import_module(module)
    _registry.wrappers.clear()
    for name, spec in _registry.specs.items():
        if spec.periodic is not None:
            huey = hueys[spec.queue]
            _registry.wrappers[spec.queue, name] = huey.periodic_task(spec.periodic, name=name)(
                _counted(name, spec.queue, spec.func)
            )
            continue
        for queue, huey in hueys.items():
            counted = _counted(name, queue, spec.func)
            _registry.counted[queue, name] = counted
            _registry.wrappers[queue, name] = huey.task(
                name=name,
                retries=spec.retries,
                retry_delay=spec.retry_delay,
                priority=LAST_PRIORITY if spec.last and huey.storage.priority else None,
            )(counted)
    return hueys


def hueys() -> dict[str, Huey]:
    """Every queue's huey instance, with every relaydesk task registered."""
    with _registry.lock:
        if not _registry.hueys:
            _registry.hueys = _build_hueys()
        return _registry.hueys


def get_huey(queue: str = LIVE) -> Huey:
    """The process-wide huey instance of `queue`."""
    return hueys()[queue]


def queue_of(name: str) -> str:
    """The queue job `name` runs on unless its caller chooses another."""
    hueys()
    return _registry.specs[name].queue


def enqueue(name: str, *args: Any, delay: float | None = None, queue: str | None = None) -> None:
    """Queue job `name` now, on its own queue or on `queue` (use enqueue_after_commit
    inside a transaction)."""
    _enqueue(name, args, delay, queue, may_follow=False)


def _enqueue(
    name: str, args: tuple[Any, ...], delay: float | None, queue: str | None, *, may_follow: bool
) -> None:
    hueys()
    queue = queue or _registry.specs[name].queue
    if may_follow and _follows(name, queue, delay):
        _followers.jobs.append((name, args))
        return
    wrapper = _registry.wrappers[queue, name]
    due = time.time() + (delay or 0)
    if delay:
        wrapper.schedule(args=args, kwargs={"queued_at": due}, delay=delay)
    else:
        wrapper(*args, queued_at=due)
        _wakeups[queue].ring()


class _Wakeup:
    """Wakes this process's idle workers of a queue when this process queues a job.

    huey's workers poll a SQLite queue, backing off to a second between polls when idle;
    a job queued here (a webhook's follow-up, an answer to deliver) need not wait for
    the next poll. Jobs queued by other processes are still found by polling (on Redis
    the workers block on the queue instead).
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.rung = 0  # jobs queued (rings) so far
        self.sleeping = 0  # workers waiting now

    def ring(self) -> None:
        with self.cond:
            self.rung += 1
            self.cond.notify()

    def ring_all(self) -> None:
        with self.cond:
            self.rung += 1
            self.cond.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        """Sleep up to `timeout` unless a job was queued since the worker saw `seen`."""
        with self.cond:
            if self.rung == seen:
                self.sleeping += 1
                try:
                    self.cond.wait(timeout)
                finally:
                    self.sleeping -= 1


_wakeups = {queue: _Wakeup() for queue in QUEUES}


class _WakingWorker(Worker):  # type: ignore[misc]
    """huey's worker whose idle sleep ends early when this process queues a job."""

    delay: float
    max_delay: float
    backoff: float

    def __init__(self, *args: Any, wakeup: _Wakeup, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wakeup = wakeup
        self.seen = 0

    def loop(self, now: Any = None) -> None:
        self.seen = self.wakeup.rung
        super().loop(now)

    def sleep(self) -> None:
        delay = min(self.delay, self.max_delay)
        self.wakeup.wait(self.seen, delay)
        if not self.stop_flag.is_set():
            self.delay = delay * self.backoff


@dataclass
class _AfterCommit:
    """A job waiting for its transaction; `owner` is the savepoint it was queued in."""

    name: str
    args: tuple[Any, ...]
    delay: float | None
    queue: str | None
    owner: SessionTransaction | None
    merge: bool = False


def enqueue_after_commit(
    session: Session,
    name: str,
    *args: Any,
    delay: float | None = None,
    queue: str | None = None,
    merge: bool = False,
) -> None:
    """Queue a job once `session` really commits; dropped if its work is rolled back.

    `merge`: the job takes one list; the merged jobs of one name (and delay and queue)
    that a transaction queued become one job at its commit, with their lists joined in
    order (at most MERGE_LIMIT items each): a batch of webhooks gets one job for their
    answers, which does its database work set-wise.

    Inside a savepoint (`session.begin_nested()`) the job waits for the outer commit:
    SQLAlchemy reports a released savepoint as a commit too, and a job queued then could
    run before its rows are visible to other connections (on PostgreSQL it found a
    message's files missing and left them pending). A savepoint rolled back drops only
    the jobs queued inside it.
    """
    pending: list[_AfterCommit] = session.info.setdefault("relaydesk_jobs", [])
    if merge and (len(args) != 1 or not isinstance(args[0], list)):
        raise TypeError(f"{name}: a merged job takes one list")
    owner = session.get_nested_transaction()
    pending.append(_AfterCommit(name, args, delay, queue, owner, merge))


MERGE_LIMIT = 20


def _merged(jobs: list[_AfterCommit]) -> list[_AfterCommit]:
    """The jobs in order, merged jobs of one kind joined into the first of them."""
    out: list[_AfterCommit] = []
    open_: dict[tuple[str, float | None, str | None], _AfterCommit] = {}
    for job in jobs:
        key = (job.name, job.delay, job.queue)
        first = open_.get(key) if job.merge else None
        if first is not None and len(first.args[0]) + len(job.args[0]) <= MERGE_LIMIT:
            first.args[0].extend(job.args[0])
            continue
        if job.merge:
            job = _AfterCommit(job.name, (list(job.args[0]),), job.delay, job.queue, None, True)
            open_[key] = job
        out.append(job)
    return out


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
    for job in _merged(session.info.pop("relaydesk_jobs", None) or []):
        try:
            _enqueue(job.name, job.args, job.delay, job.queue, may_follow=True)
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
    recovered) the sweeps of this scheduler's queue are queued from this loop, which huey
    runs every second.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sweep_seconds = get_settings().sweep_seconds
        self._next_sweep = time.monotonic() + self.sweep_seconds
        self.queue = _QUEUE_NAMED.get(getattr(self.huey, "name", ""), LIVE)

    def _faster(self) -> bool:
        return bool(self.periodic) and self.sweep_seconds < 60

    def loop(self, now: Any = None) -> None:
        if self._faster() and self._next_sweep <= time.monotonic():
            self._next_sweep = time.monotonic() + self.sweep_seconds
            for name, spec in _registry.specs.items():
                if spec.every_minute and spec.queue == self.queue:
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

    def _wakeup(self) -> _Wakeup:
        return _wakeups[_QUEUE_NAMED.get(self.huey.name, LIVE)]

    def _create_worker(self) -> Worker:
        return _WakingWorker(
            huey=self.huey,
            stop_flag=self.stop_flag,
            default_delay=self.default_delay,
            max_delay=self.max_delay,
            backoff=self.backoff,
            max_tasks=self.max_tasks,
            wakeup=self._wakeup(),
        )

    def stop(self, graceful: bool = False) -> None:
        self.stop_flag.set()
        self._wakeup().ring_all()  # idle workers see the flag now, not after their sleep
        for hook in list(_stop_hooks):
            try:
                hook()
            except Exception:
                log.exception("a stop hook failed: %s", getattr(hook, "__name__", hook))
        super().stop(graceful)


class EmbeddedConsumer(WorkerConsumer):
    """A huey consumer that runs inside another process's loop and leaves its signals alone."""

    def _set_signal_handlers(self) -> None:
        return None


_consumers: list[Consumer] = []
# Called when this process's worker is asked to stop (each queue's consumer calls them;
# they must be idempotent): work held outside huey's jobs is handed back there.
_stop_hooks: list[Callable[[], object]] = []
_Hook = TypeVar("_Hook", bound=Callable[[], object])


def on_stop(hook: _Hook) -> _Hook:
    """Call `hook()` when this process's worker stops (a decorator)."""
    if hook not in _stop_hooks:
        _stop_hooks.append(hook)
    return hook


def stopping() -> bool:
    """True once this process's worker was asked to stop (long jobs should return)."""
    return any(c.stop_flag.is_set() for c in _consumers)


def _threads(queue: str) -> int:
    settings = get_settings()
    return settings.worker_threads if queue == LIVE else settings.bulk_worker_threads


def _consumer(cls: type[WorkerConsumer], queue: str, **options: Any) -> WorkerConsumer:
    consumer = cls(
        get_huey(queue),
        workers=_threads(queue),
        worker_type="thread",
        initial_delay=0.05,
        max_delay=1.0,
        **options,
    )
    _consumers.append(consumer)
    return consumer


def start_embedded_worker(queues: tuple[str, ...] = QUEUES) -> list[WorkerConsumer]:
    """Start each queue's worker threads and scheduler in this process."""
    started = [_consumer(EmbeddedConsumer, q, check_worker_health=False) for q in queues]
    for consumer in started:
        consumer.start()
    _sweep_soon(queues)
    return started


def _sweep_soon(queues: tuple[str, ...]) -> None:
    """Recover interrupted work right after a (re)start, not at the next minute."""
    for name, spec in list(_registry.specs.items()):
        if spec.at_start and spec.queue in queues:
            try:
                enqueue(name)
            except Exception:
                log.exception("could not queue the start-up sweep %s", name)


def run_worker(queues: tuple[str, ...] = QUEUES) -> None:
    """Run the workers of `queues` until interrupted (`relaydesk worker`).

    The first queue's consumer owns the process's signals; the others run beside it and
    stop gracefully when it does.
    """
    hueys()
    main = _consumer(WorkerConsumer, queues[0])
    beside = [_consumer(EmbeddedConsumer, q, check_worker_health=False) for q in queues[1:]]
    for consumer in beside:
        consumer.start()
    _sweep_soon(queues)
    settle_after_startup()
    try:
        main.run()
    finally:
        for consumer in beside:
            consumer.stop(graceful=True)
