"""A background thread that moves messages through their statuses; callbacks go out in lanes.

Like Twilio, the emulator posts many status callbacks at once: a slow webhook must not
hold up every other message's steps. A message's callbacks always use the same lane,
so they reach the webhook in the order of its statuses.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
import zlib

from relaydesk.channels.sandbox.callbacks import post_signed, status_params
from relaydesk.channels.sandbox.knobs import Control
from relaydesk.channels.sandbox.lifecycle import TERMINAL, advance
from relaydesk.channels.sandbox.outbound import Outbound, shown
from relaydesk.channels.sandbox.store import SandboxStore, StoredMessage
from relaydesk.core import netguard
from relaydesk.core.config import Settings

log = logging.getLogger(__name__)

CALLBACK_LANES = 8


class _Lanes:
    """Threads that post status callbacks; each message keeps to one lane (in order)."""

    def __init__(self, outbound: Outbound, auth_token: str, count: int = CALLBACK_LANES) -> None:
        self._outbound = outbound  # its connection pools are shared by the lanes
        self._auth_token = auth_token
        self._queues: list[queue.SimpleQueue[StoredMessage | None]] = [
            queue.SimpleQueue() for _ in range(count)
        ]
        self._threads = [
            threading.Thread(
                target=self._run, args=(q,), name=f"sandbox-callbacks-{i}", daemon=True
            )
            for i, q in enumerate(self._queues)
        ]
        for thread in self._threads:
            thread.start()

    def post(self, msg: StoredMessage) -> None:
        lane = zlib.crc32(msg.sid.encode()) % len(self._queues)
        self._queues[lane].put(msg)

    def close(self, timeout: float) -> None:
        """Post what is queued, then stop."""
        for q in self._queues:
            q.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self, lane: queue.SimpleQueue[StoredMessage | None]) -> None:
        while (msg := lane.get()) is not None:
            assert msg.status_callback is not None
            try:
                status = post_signed(
                    self._outbound, msg.status_callback, status_params(msg), self._auth_token
                )
            except netguard.BlockedAddress as exc:
                log.warning(
                    "sandbox: status callback of %s (%s) to %s refused: %s",
                    msg.sid,
                    msg.status,
                    shown(msg.status_callback),
                    exc,
                )
                continue
            except Exception:
                log.exception("sandbox: status callback for %s failed", msg.sid)
                continue
            log.info("sandbox: %s %s → callback answered %s", msg.sid, msg.status, status)


class Dispatcher:
    """A time-ordered heap of due status steps, persisted in the store so they survive restarts.

    Steps for one sender are paced at `sender_mps` like Twilio's per-sender queue: creating
    a message is never refused, its `sent` step just waits for the sender's next free slot.
    """

    def __init__(
        self, store: SandboxStore, control: Control, settings: Settings, outbound: Outbound
    ) -> None:
        self._store = store
        self._control = control
        self._settings = settings
        self._outbound = outbound
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}  # the live entry per SID; older heap entries are stale
        self._counter = itertools.count()
        self._next_slot: dict[str, float] = {}
        self._paced: set[str] = set()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lanes: _Lanes | None = None

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Load pending steps from the store and start the thread."""
        if self.running:
            return
        # A step persisted under an older, longer delay should not outwait the current one.
        horizon = time.time() + self._control.knobs.status_delay_ms / 1000
        for sid, due in self._store.pending():
            self.schedule(sid, min(due, horizon))
        self._stopping = False
        self._lanes = _Lanes(self._outbound, self._settings.auth_token)
        self._thread = threading.Thread(target=self._run, name="sandbox-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 20.0) -> None:
        """Stop after the current step; pending steps stay in the store."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._lanes is not None:
            self._lanes.close(timeout)
            self._lanes = None

    def schedule(self, sid: str, due: float) -> None:
        """Run the next step of `sid` at epoch time `due` (replacing any earlier plan)."""
        with self._cond:
            self._due[sid] = due
            heapq.heappush(self._heap, (due, next(self._counter), sid))
            self._cond.notify()

    def clear(self) -> None:
        """Drop every planned step (the store is cleared separately)."""
        with self._cond:
            self._heap.clear()
            self._due.clear()
            self._next_slot.clear()
            self._paced.clear()

    def _run(self) -> None:
        while (sid := self._next_due()) is not None:
            try:
                self._step(sid)
            except Exception:
                # One bad message must never stop the others.
                log.exception("sandbox: status step for %s failed", sid)

    def _next_due(self) -> str | None:
        with self._cond:
            while not self._stopping:
                if not self._heap:
                    self._cond.wait()
                    continue
                due, _, sid = self._heap[0]
                if self._due.get(sid) != due:
                    heapq.heappop(self._heap)
                    continue
                wait = due - time.time()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                del self._due[sid]
                return sid
        return None

    def _step(self, sid: str) -> None:
        msg = self._store.get(sid)
        if msg is None:
            return
        now = time.time()
        if msg.status == "queued" and self._wait_for_slot(msg, now):
            return
        knobs = self._control.knobs
        changed = advance(msg, self._control.rule_for(msg.to_addr), now, self._settings)
        if changed is None:
            self._store.update(msg, None)
            return
        next_due = None if changed.status in TERMINAL else now + knobs.status_delay_ms / 1000
        if not self._store.update(changed, next_due):
            return
        if next_due is not None:
            self.schedule(sid, next_due)
        if changed.status_callback and self._lanes is not None:
            self._lanes.post(changed)

    def _wait_for_slot(self, msg: StoredMessage, now: float) -> bool:
        """Reserve the sender's next send slot; True if the step was pushed to a later time."""
        mps = self._control.knobs.sender_mps
        if mps <= 0 or msg.sid in self._paced:
            self._paced.discard(msg.sid)
            return False
        sender = msg.from_addr or ""
        slot = max(now, self._next_slot.get(sender, 0.0))
        self._next_slot[sender] = slot + 1.0 / mps
        if slot <= now:
            return False
        self._paced.add(msg.sid)
        self.schedule(msg.sid, slot)
        return True
