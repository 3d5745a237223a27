"""Group commit for webhooks: one writer thread stores many webhooks per transaction.

Each webhook request waits until its own row is committed (nothing is acknowledged
before it is durable), but concurrent webhooks share one transaction, which is what
lets a single SQLite file take thousands of webhooks a second.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from relaydesk.channels.twilio.parsing import InboundRecord, StatusRecord
from relaydesk.core.db import bounded_wait, session_scope
from relaydesk.messaging import spool
from relaydesk.messaging.ingest import record_statuses, store_inbound

log = logging.getLogger(__name__)

MAX_BATCH = 256
# While the database is unavailable a batch waits only this long for a lock (instead
# of spool.LOCK_WAIT): the spool keeps the webhook anyway.
BRIEF_LOCK_WAIT = 0.5


@dataclass
class _Item:
    record: InboundRecord | StatusRecord
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[str] | None


class WebhookWriter:
    """Stores webhooks in batches on a dedicated thread."""

    def __init__(self) -> None:
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._replayer = spool.Replayer()
        # True since a batch found the database unavailable, until one is stored again.
        self._unavailable = False
        self._stopping = False

    def start(self) -> None:
        """Start the writer thread, and the spool's replay (a web process may run no sweep)."""
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="webhook-writer", daemon=True)
            self._thread.start()
        self._replayer.start()

    def stop(self) -> None:
        """Finish what is queued, then stop."""
        self._replayer.stop()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    @property
    def thread_ident(self) -> int | None:
        """The writer thread's identifier while it runs."""
        return self._thread.ident if self._thread is not None else None

    def backlog(self) -> int:
        """How many webhooks wait to be stored (for /health)."""
        return self._queue.qsize()

    async def submit(self, record: InboundRecord | StatusRecord) -> str:
        """Store one webhook; returns "stored", "spooled" or "dead" once it is on disk."""
        if self._thread is None:
            result = await asyncio.to_thread(_write_one, record)
            if isinstance(result, BaseException):
                raise result
            return result
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        self._queue.put(_Item(record, loop, future))
        return await future

    def _run(self) -> None:
        while not self._stopping:
            first = self._queue.get()
            if first is None:
                break
            self._process([first, *self._take(MAX_BATCH - 1)])

    def _take(self, most: int) -> list[_Item]:
        """What is waiting now, up to `most` webhooks (the stop mark ends the run)."""
        taken: list[_Item] = []
        while len(taken) < most and not self._stopping:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                self._stopping = True
                break
            taken.append(nxt)
        return taken

    def _process(self, batch: list[_Item]) -> None:
        results = self._store(batch)
        for item, result in zip(batch, results, strict=True):
            if item.loop is not None and item.future is not None:
                item.loop.call_soon_threadsafe(_resolve, item.future, result)

    def _store(self, batch: list[_Item]) -> list[str | BaseException]:
        def top_up() -> list[InboundRecord | StatusRecord]:
            # The webhooks that came while the batch waited for the lock join it: they
            # are stored now, not after another wait.
            more = self._take(MAX_BATCH - len(batch))
            batch.extend(more)
            return [item.record for item in more]

        records = [item.record for item in batch]
        try:
            lock_wait = BRIEF_LOCK_WAIT if self._unavailable else None
            outcome = write_batch(records, lock_wait, more=top_up)
        except Exception as exc:
            records = [item.record for item in batch]
            if not spool.is_transient(exc):
                log.exception("batch of %d webhooks failed; storing them one by one", len(batch))
                return [_write_one(record) for record in records]
            if not self._unavailable:
                log.warning("database unavailable (%s); spooling webhooks", spool.describe(exc))
            self._unavailable = True
            return [_set_aside(record, exc) for record in records]
        if self._unavailable:
            self._unavailable = False
            log.warning("database available again; storing the spooled webhooks")
            self._replayer.wake()
        return [outcome] * len(batch)

    def replay_soon(self) -> None:
        """Replay the spool now rather than at the next period."""
        self._replayer.wake()


def _resolve(future: asyncio.Future[str], result: str | BaseException) -> None:
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


def write_batch(
    records: list[InboundRecord | StatusRecord],
    lock_wait: float | None = None,
    *,
    more: Callable[[], list[InboundRecord | StatusRecord]] | None = None,
) -> str:
    """Store a batch of webhooks in one transaction, waiting at most `lock_wait` for locks;
    `more` gives the webhooks that arrived meanwhile, once the lock is taken."""
    with session_scope() as session:
        # A lock held elsewhere (a long migration, a backup) must not hold the webhook
        # past Twilio's timeout: the wait runs out, and the spool keeps the webhook.
        bounded_wait(session, spool.lock_budget(lock_wait))
        if more is not None:
            records = [*records, *more()]
        inbound = [r for r in records if isinstance(r, InboundRecord)]
        statuses = [r for r in records if isinstance(r, StatusRecord)]
        if inbound:
            store_inbound(session, inbound)
        if statuses:
            record_statuses(session, statuses)
    return "stored"


def _write_one(record: InboundRecord | StatusRecord) -> str | BaseException:
    try:
        return write_batch([record])
    except Exception as exc:
        if not spool.is_transient(exc):
            log.exception("could not store webhook %.64r", record.sid)
        return _set_aside(record, exc)


def _set_aside(record: InboundRecord | StatusRecord, error: BaseException) -> str | BaseException:
    """Keep a webhook the database did not take on disk: "spooled", "dead" or the error.

    Only a webhook that is on disk may be acknowledged; the error becomes a 5xx.
    """
    try:
        if spool.is_transient(error):
            spool.keep(record)
            return "spooled"
        spool.bury(record, error)
        return "dead"
    except Exception:
        log.exception("could not write webhook %.64r to the spool either", record.sid)
        return error


_writer: WebhookWriter | None = None


def get_writer() -> WebhookWriter:
    """The process-wide writer (started by the app's lifespan)."""
    global _writer
    if _writer is None:
        _writer = WebhookWriter()
    return _writer
