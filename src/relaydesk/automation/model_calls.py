"""Where automatic answers wait for their model: up to MODEL_CONCURRENCY at once.

A model takes its time (a second, often more), and the live worker threads are few
(WORKER_THREADS): if they called the model themselves, a thousand customers writing at
once would be answered four at a time, and webhooks, sends and sweeps would wait behind
them. So the worker thread claims and decides the run as before, and when the answer
needs the model it hands the rest (the model call, then storing and sending the answer)
to these threads and takes its next job.

A handed-over run stays claimed by this process (its token, `claimed_by`, a lease), so
the guarantees are the claim's: a process that dies with runs waiting here leaves them
to the sweep (at once once the process is provably gone, otherwise when the lease ends),
and a run whose lease ran out while it waited is not answered here a second time: a run
that waited for more than half its lease renews it first, or gives it up if the sweep
already handed it to another worker.

The threads are started on demand, up to the setting's size, and end after a minute
with nothing to do. They are daemon threads: a stopping process does not wait for the
model calls queued here (their runs are claimed, see above).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from relaydesk.core.config import get_settings

log = logging.getLogger(__name__)

IDLE_SECONDS = 60.0

Work = Callable[[], Any]


class ModelCalls:
    """A pool of up to `size` threads, started when there is work for them."""

    def __init__(self, size: int, name: str = "model") -> None:
        self.size = size
        self.name = name
        self._queue: queue.SimpleQueue[tuple[Work, str]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def submit(self, work: Work, what: str) -> None:
        """Run `work()` on one of the threads; `what` names it in the log if it fails."""
        self._queue.put((work, what))
        with self._lock:
            if self._idle > 0 or self._threads >= self.size:
                return
            self._threads += 1
            number = self._threads
        threading.Thread(
            target=self._serve, name=f"relaydesk-{self.name}-{number}", daemon=True
        ).start()

    def busy(self) -> int:
        """Threads working now (for tests and the health of the process)."""
        with self._lock:
            return self._threads - self._idle

    def _serve(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            try:
                work, what = self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    self._idle -= 1
                    if self._queue.empty():
                        self._threads -= 1
                        return
                continue
            with self._lock:
                self._idle -= 1
            try:
                work()
            except Exception:
                log.exception("%s failed; the sweep takes it over", what)


_pool: ModelCalls | None = None
_pool_lock = threading.Lock()


def pool() -> ModelCalls:
    """The process's pool, sized by MODEL_CONCURRENCY (a changed setting, as in tests,
    gets a new pool; the old one's threads finish what they hold and end)."""
    global _pool
    size = get_settings().model_concurrency
    with _pool_lock:
        if _pool is None or _pool.size != size:
            _pool = ModelCalls(size)
        return _pool


_senders: ModelCalls | None = None


def senders() -> ModelCalls:
    """The threads that hand stored answers to Twilio, up to SEND_CONCURRENCY: storing
    and deciding go on while they wait for Twilio's replies (a tenth of a second or
    more each), and a reply never waits in the queue of model calls."""
    global _senders
    size = get_settings().send_concurrency
    with _pool_lock:
        if _senders is None or _senders.size != size:
            _senders = ModelCalls(size, "send")
        return _senders
