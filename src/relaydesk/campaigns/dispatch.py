"""Sending a campaign: claim recipients, pace them per sender, hand each to Twilio once.

A recipient is claimed and its message row created in one transaction, so a recipient
either has no message yet or exactly one. From then on the message layer's guarantees
hold: the message is claimed before its Twilio call, and a message whose call was
interrupted is looked up in Twilio's Messages list (To, DateSent) before any retry.
After a crash, the messaging sweep delivers (or reconciles) what was claimed, and the
campaign sweep restarts the dispatcher once its lease ran out.

Pacing is one row per sender (`send_pacers.next_at`): every claim takes the next slots
in the same transaction, so any number of dispatchers, in any number of processes,
together keep to `CAMPAIGN_RATE_MPS`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from relaydesk.campaigns import service as campaigns
from relaydesk.campaigns.models import Batch, BatchStatus, Recipient, RecipientStatus, SendPacer
from relaydesk.channels.twilio.gateway import GatewayError, SentMessage
from relaydesk.core import events, owners
from relaydesk.core.config import get_settings
from relaydesk.core.db import Base, dialect_insert, session_scope, utcnow
from relaydesk.core.errors import Conflict, RelaydeskError, WindowClosed
from relaydesk.core.i18n import N_
from relaydesk.core.tasks import live_waiting
from relaydesk.core.tasks import stopping as worker_stopping
from relaydesk.messaging import delivery, queries
from relaydesk.messaging import service as messaging
from relaydesk.messaging.models import MessageStatus

log = logging.getLogger(__name__)

LOOKAHEAD_SECONDS = 0.5  # slots are claimed at most this far ahead
LOW_WATER_SECONDS = 0.15  # below this much reserve, claim whatever fits
MAX_CLAIM = 50  # recipients per claim transaction
MAX_AHEAD = 256  # claimed calls waiting for their slots, at most
CATCH_UP = 1.05  # late calls go at most this many times faster than the rate
STATUS_CHECK_SECONDS = 0.5
TICK_SECONDS = 0.05  # how often the dispatcher records answers
# Recipients without an outcome yet.
UNSETTLED = (RecipientStatus.PENDING, RecipientStatus.CLAIMED)
RATE_LIMIT_CODES = frozenset({429, 20429})
# While earlier messages wait for a retry (Twilio unreachable), nothing new is claimed;
# after this long the dispatcher hands the batch back to the minute sweep.
HOLD_SECONDS = 60.0


@dataclass(frozen=True)
class Claimed:
    """A recipient with its (claimed) message, due at `slot` (Unix time)."""

    recipient_id: int
    message: delivery.Snapshot
    slot: float


def lease() -> timedelta:
    """How long a dispatcher's claim on a batch lasts without renewal."""
    return timedelta(seconds=get_settings().campaign_lease_seconds)


def _start(batch_id: int) -> str | None:
    """Move a due pending batch to processing; the sender when there is work to do."""
    now = utcnow()
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        if batch is None:
            return None
        if batch.status == BatchStatus.PENDING:
            if batch.send_at is not None and batch.send_at > now + timedelta(seconds=1):
                return None  # its delayed job (or the sweep) comes back at send_at
            batch.status, batch.started_at = BatchStatus.PROCESSING, now
        if batch.status != BatchStatus.PROCESSING:
            return None
        batch.dispatcher_until, batch.dispatcher = now + lease(), owners.me()
        return batch.sender


def _status(batch_id: int, renew: bool) -> BatchStatus | None:
    if not renew:
        with session_scope(write=False) as session:
            return session.scalar(select(Batch.status).where(Batch.id == batch_id))
    with session_scope() as session:
        session.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.status == BatchStatus.PROCESSING)
            .values(dispatcher_until=utcnow() + lease(), dispatcher=owners.me())
            .execution_options(synchronize_session=False)
        )
        return session.scalar(select(Batch.status).where(Batch.id == batch_id))


def _take_slots(session: Session, sender: str, count: int, rate: float) -> list[float]:
    """Reserve `count` consecutive send slots of `sender` (same transaction as the claim)."""
    session.execute(
        dialect_insert(session)(SendPacer)
        .values(sender=sender, next_at=0.0)
        .on_conflict_do_nothing(index_elements=["sender"])
    )
    query = select(SendPacer.next_at).where(SendPacer.sender == sender)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    next_at = float(session.scalar(query) or 0.0)
    base = max(next_at, time.time())
    step = 1.0 / rate
    session.execute(
        update(SendPacer)
        .where(SendPacer.sender == sender)
        .values(next_at=base + count * step)
        .execution_options(synchronize_session=False)
    )
    return [base + i * step for i in range(count)]


def pacer_lead(sender: str) -> float:
    """Seconds until the sender's next free slot (0 when it is free now)."""
    with session_scope(write=False) as session:
        next_at = session.scalar(select(SendPacer.next_at).where(SendPacer.sender == sender))
    return max(0.0, float(next_at or 0.0) - time.time())


def push_back(sender: str, seconds: float) -> None:
    """Twilio said "too many requests": the sender's next slot moves later."""
    with session_scope() as session:
        session.execute(
            update(SendPacer)
            .where(SendPacer.sender == sender)
            .values(next_at=max(time.time(), 0) + seconds)
            .execution_options(synchronize_session=False)
        )


_recipients = Base.metadata.tables["multi_sms_recipients"]
_mark_queued = (
    update(_recipients)
    .where(_recipients.c.id == bindparam("rid"))
    .values(status=RecipientStatus.QUEUED, message_id=bindparam("mid"))
)
_mark_refused = (
    update(_recipients)
    .where(_recipients.c.id == bindparam("rid"))
    .values(status=bindparam("state"), reason=bindparam("why"))
)


def _from(sender: str, to: str) -> str | None:
    """The sender of one recipient's message: the batch's, except a plain (SMS) number
    for a WhatsApp recipient. That one goes from our WhatsApp address, the one the
    customer wrote to, so that the 24-hour window is judged on their conversation."""
    if to.startswith("whatsapp:") and not sender.startswith(("MG", "whatsapp:")):
        return None
    return sender


def claim(batch_id: int, sender: str, count: int, rate: float) -> list[Claimed]:
    """Claim up to `count` pending recipients and create their messages, in one transaction.

    The messages are created already claimed for delivery (see `messaging.send_many`):
    the Twilio calls that follow need no further database work until their answers are
    recorded, and a dispatcher that dies leaves them for the sweep to reconcile.
    """
    now = utcnow()
    with session_scope() as session:
        query = (
            select(Recipient.id)
            .where(Recipient.batch_id == batch_id, Recipient.status == RecipientStatus.PENDING)
            .order_by(Recipient.id)
            .limit(count)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list(session.scalars(query))
        if not ids:
            return []
        batch = session.get(Batch, batch_id)
        if batch is None or batch.status != BatchStatus.PROCESSING:
            return []
        rows = sorted(
            session.execute(
                update(Recipient)
                .where(Recipient.id.in_(ids), Recipient.status == RecipientStatus.PENDING)
                .values(status=RecipientStatus.CLAIMED, claimed_at=now)
                .returning(Recipient.id, Recipient.number)
                .execution_options(synchronize_session=False)
            ).all()
        )
        if not rows:
            return []
        requests = [
            messaging.SendRequest(
                to=number, body=batch.body, source="campaign", from_=_from(batch.sender, number)
            )
            for _, number in rows
        ]
        outcomes = messaging.send_many(
            session, requests, safety_net=False, claimed_for=delivery.claim_lease()
        )
        made: list[tuple[int, int]] = []
        queued, refused = [], []
        for (rid, _), outcome in zip(rows, outcomes, strict=True):
            if isinstance(outcome, RelaydeskError):
                # Opted out or outside the WhatsApp window: skipped, with the reason.
                skipped = isinstance(outcome, Conflict | WindowClosed)
                state = RecipientStatus.SKIPPED if skipped else RecipientStatus.FAILED
                refused.append({"rid": rid, "state": state, "why": outcome.message})
            else:
                queued.append({"rid": rid, "mid": outcome})
                made.append((rid, outcome))
        conn = session.connection()
        if queued:
            conn.execute(_mark_queued, queued)
        if refused:
            conn.execute(_mark_refused, refused)
        if not made:
            return []
        found = delivery.snapshots(session, [mid for _, mid in made])
        slots = _take_slots(session, sender, len(made), rate)
        return [
            Claimed(rid, found[mid], slot) for (rid, mid), slot in zip(made, slots, strict=True)
        ]


class Dispatcher:
    """Runs one batch until no recipient is left, it is paused or canceled.

    This thread claims recipients ahead of time (creating their messages and reserving
    their slots) and records Twilio's answers in batches. Each claimed call goes to a
    pool thread at once; it waits for its slot and then for a free place among the
    calls in flight (`CAMPAIGN_CONCURRENCY`). The calls never touch the database, so
    many can be in flight at once even on SQLite, whose single writer would otherwise
    make them queue, and the pace does not depend on how busy this thread is.
    """

    def __init__(self, batch_id: int, sender: str) -> None:
        settings = get_settings()
        self.batch_id = batch_id
        self.sender = sender
        self.rate = settings.campaign_rate_mps
        self.concurrency = settings.campaign_concurrency
        self.pause_after = settings.campaign_pause_after_failures
        # At most this many claimed calls wait for their slots (LOOKAHEAD_SECONDS' worth,
        # each waiting in a pool thread).
        self.ahead = max(1, min(MAX_AHEAD, math.ceil(self.rate * LOOKAHEAD_SECONDS)))
        self.per_claim = max(1, min(MAX_CLAIM, self.ahead))
        self.failures = 0  # calls refused in a row
        self.accepted = False  # Twilio has accepted one of this dispatcher's calls
        self.exhausted = False  # no pending recipient was left to claim
        self.last_slot = 0.0  # the last slot claimed
        self.last_at = 0.0  # when the last call was let go
        self.min_gap = 1.0 / (self.rate * CATCH_UP)
        self.gateway = delivery.get_gateway()
        self.lock = threading.Lock()
        self.parked = 0  # handed to the pool, waiting for their slot
        self.places = threading.BoundedSemaphore(self.concurrency)
        # Messages of this batch without an outcome that are not this dispatcher's calls
        # in flight: left by a process that died, or waiting for a retry because Twilio
        # could not be reached. Until they have one, nothing new is claimed: an outage
        # must not hand the whole list to the retry queue (unpaced, and "completed").
        self.waiting: set[int] = set()
        self.held_since: float | None = None
        self.last_wait_check = 0.0

    def run(self) -> None:
        """Claim, pace and send until the batch is done or stopped.

        Claims take a block of recipients while less than LOOKAHEAD_SECONDS of the
        sender's slots are reserved; the loop records finished calls every
        TICK_SECONDS. The database sees a few transactions a second whatever the
        rate, not one per message. A pause, a cancel or a shutdown stops the claims;
        what was already claimed (at most LOOKAHEAD_SECONDS of sending) still goes out
        at its slot, because its messages exist and are promised to Twilio.
        """
        inflight: dict[Future[SentMessage], Claimed] = {}
        last_check, last_renew = 0.0, time.monotonic()
        status: BatchStatus | None = BatchStatus.PROCESSING
        threads = self.concurrency + self.ahead
        self.waiting = set(_unresolved(self.batch_id))
        handed_back = False
        with ThreadPoolExecutor(threads, thread_name_prefix="campaign") as pool:
            while True:
                self._settle(inflight)
                now = time.monotonic()
                if now - last_check >= STATUS_CHECK_SECONDS:
                    renew = now - last_renew >= lease().total_seconds() / 3
                    status = _status(self.batch_id, renew)
                    last_check = now
                    if renew:
                        last_renew = now
                if status != BatchStatus.PROCESSING or worker_stopping():
                    break
                if self._held(now) and not inflight:
                    if now - (self.held_since or now) >= HOLD_SECONDS:
                        handed_back = True  # the minute sweep comes back for it
                        break
                    time.sleep(TICK_SECONDS)
                    continue
                if live_waiting():
                    # Answers and operators' messages wait for a worker: claim nothing
                    # new until they have gone (what was claimed still goes at its slot).
                    time.sleep(TICK_SECONDS)
                    continue
                claimed = self._claim(len(inflight))
                for item in claimed:
                    with self.lock:
                        self.parked += 1
                    inflight[pool.submit(self._call, item)] = item
                if claimed:
                    continue
                if not inflight and self.exhausted:
                    if _has_pending(self.batch_id):
                        time.sleep(STATUS_CHECK_SECONDS)  # another dispatcher holds them
                        self.exhausted = False
                        continue
                    break
                time.sleep(TICK_SECONDS)
            self._settle(inflight, until_empty=True)
        if worker_stopping() or handed_back:
            # The server is shutting down (what was claimed has been sent), or earlier
            # messages still wait for Twilio: hand the batch back to the sweep.
            _release(self.batch_id)
            return
        _finish(self.batch_id)

    def _held(self, now: float) -> bool:
        """True while earlier messages of the batch wait for an outcome (checked twice a second)."""
        if not self.waiting:
            self.held_since = None
            return False
        if now - self.last_wait_check >= STATUS_CHECK_SECONDS:
            self.last_wait_check = now
            with session_scope(write=False) as session:
                states = queries.delivery_states(session, sorted(self.waiting))
            for mid in list(self.waiting):
                state = states.get(mid)
                if (
                    state is not None
                    and state["status"] == MessageStatus.PENDING
                    and state["sid"] is None
                ):
                    continue
                self.waiting.discard(mid)
                if state is None:
                    continue  # deleted meanwhile
                if state["sid"] is not None:
                    self.failures, self.accepted = 0, True
                else:
                    # A retry gave up: a failure like a refusal.
                    self._count_failure(state["error_message"])
        if not self.waiting:
            self.held_since = None
            return False
        if self.held_since is None:
            self.held_since = now
        return True

    def _claim(self, unfinished: int) -> list[Claimed]:
        """Claim the next block of recipients when it is time.

        `unfinished`: claimed calls whose answers are not recorded yet.
        """
        if self.exhausted:
            return []
        if self.failures or not self.accepted:
            # Until Twilio has accepted a call, and while it refuses them, nothing is
            # claimed ahead: no more than may be in flight, so that an automatic pause
            # leaves the rest pending.
            want = self.concurrency - unfinished
        else:
            with self.lock:
                want = self.ahead - self.parked
        want = min(want, self.per_claim)
        if want <= 0:
            return []
        # A block once the reserve has room for one, or whatever fits when the sender's
        # slots are about to run out (a slot not claimed in time is lost). Our own
        # reserve says when there is no need to ask; the shared pacer (other
        # dispatchers of this sender may be ahead) decides.
        own = self.last_slot - time.time()
        if own >= LOW_WATER_SECONDS and (want < self.per_claim or own > LOOKAHEAD_SECONDS):
            return []
        lead = pacer_lead(self.sender)
        if lead > LOOKAHEAD_SECONDS or (want < self.per_claim and lead >= LOW_WATER_SECONDS):
            return []
        claimed = claim(self.batch_id, self.sender, want, self.rate)
        if claimed:
            self.last_slot = claimed[-1].slot
        elif not _has_pending(self.batch_id, (RecipientStatus.PENDING,)):
            # (A block can be all skipped, opted out.) Recipients never return to
            # pending: once none is left, stop asking.
            self.exhausted = True
        return claimed

    def _call(self, item: Claimed) -> SentMessage:
        """Wait for the slot, then for a place among the calls in flight, then call."""
        delay = item.slot - time.time()
        if delay > 0:
            time.sleep(delay)
        with self.places:
            # A call made late (this process was busy) catches up, but at most CATCH_UP
            # times faster than the rate: the sender never sees the late ones in a burst.
            with self.lock:
                at = max(time.time(), self.last_at + self.min_gap)
                self.last_at = at
                self.parked -= 1
            delay = at - time.time()
            if delay > 0:
                time.sleep(delay)
            return delivery.submit(self.gateway, item.message)

    def _settle(
        self, inflight: dict[Future[SentMessage], Claimed], *, until_empty: bool = False
    ) -> None:
        """Record the answers of finished calls (all of them, with `until_empty`)."""
        if until_empty and inflight:
            wait(inflight)
        done = [f for f in inflight if f.done()]
        if not done:
            return
        sent: list[delivery.Sent] = []
        failed: list[tuple[Claimed, BaseException]] = []
        for future in done:
            item = inflight.pop(future)
            error = future.exception()
            if error is None:
                answer = future.result()
                sent.append(
                    delivery.Sent(item.message.id, answer.sid, answer.status, answer.num_segments)
                )
            else:
                failed.append((item, error))
        if sent:
            delivery.record_sent(sent)
            self.failures, self.accepted = 0, True
        for item, error in failed:
            self._failed(item, error)

    def _failed(self, item: Claimed, error: BaseException) -> None:
        if not isinstance(error, GatewayError):
            # Left claimed: after the claim runs out the sweep asks Twilio whether the
            # message got there before it sends anything again.
            log.error(
                "campaign %s: sending message %s failed",
                self.batch_id,
                item.message.id,
                exc_info=error,
            )
            self.waiting.add(item.message.id)
            return
        outcome = delivery.record_failure(item.message, error)
        if outcome.state == "retrying" and error.code in RATE_LIMIT_CODES:
            push_back(self.sender, 1.0)  # the message itself is retried with backoff
            return
        if outcome.state == "retrying":
            # Twilio could not be reached: wait for this message's retry before
            # claiming anyone else.
            self.waiting.add(item.message.id)
            return
        if outcome.state in ("refused", "failed"):
            self._count_failure(outcome.error.message if outcome.error else None)

    def _count_failure(self, detail: str | None) -> None:
        self.failures += 1
        if self.failures >= self.pause_after:
            _auto_pause(self.batch_id, self.pause_after, detail)


def _release(batch_id: int) -> None:
    with session_scope() as session:
        session.execute(
            update(Batch)
            .where(Batch.id == batch_id)
            .values(dispatcher_until=None, dispatcher=None)
            .execution_options(synchronize_session=False)
        )


def _queued_messages(session: Session, batch_id: int) -> list[int]:
    return [
        mid
        for mid in session.scalars(
            select(Recipient.message_id).where(
                Recipient.batch_id == batch_id, Recipient.status == RecipientStatus.QUEUED
            )
        )
        if mid is not None
    ]


def _unresolved(batch_id: int) -> list[int]:
    """Messages of the batch that Twilio has neither accepted nor finally refused yet."""
    with session_scope(write=False) as session:
        states = queries.delivery_states(session, _queued_messages(session, batch_id))
    return sorted(mid for mid, state in states.items() if state["status"] == MessageStatus.PENDING)


def _has_pending(batch_id: int, states: tuple[RecipientStatus, ...] = UNSETTLED) -> bool:
    with session_scope(write=False) as session:
        found = session.scalar(
            select(Recipient.id)
            .where(Recipient.batch_id == batch_id, Recipient.status.in_(states))
            .limit(1)
        )
    return found is not None


def _auto_pause(batch_id: int, count: int, detail: str | None) -> None:
    detail = detail or N_("Twilio refused the messages")
    with session_scope() as session:
        changed = session.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.status == BatchStatus.PROCESSING)
            .values(
                status=BatchStatus.PAUSED,
                note=N_("Paused after %(count)s failures in a row; last: %(detail)s")
                % {"count": count, "detail": detail},
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    if changed:
        log.warning("campaign %s paused after %s consecutive failures", batch_id, count)


def _finish(batch_id: int) -> None:
    """Mark a batch completed (or failed, when nothing could be sent) once all have an outcome.

    An outcome: accepted by Twilio, refused, skipped, or given up after the retries.
    """
    now = utcnow()
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        if batch is None or batch.status != BatchStatus.PROCESSING:
            return
        left = session.scalar(
            select(Recipient.id)
            .where(Recipient.batch_id == batch_id, Recipient.status.in_(UNSETTLED))
            .limit(1)
        )
        if left is not None:
            return
        queued = _queued_messages(session, batch_id)
        states = queries.delivery_states(session, queued)
        if any(s["status"] == MessageStatus.PENDING for s in states.values()):
            # Not every recipient has an outcome yet (a retry, or a claim of a process
            # that died): "completed" would not be true. The sweep looks again.
            batch.dispatcher_until, batch.dispatcher = None, None
            return
        refused = all(
            s["status"] == MessageStatus.FAILED and s["sid"] is None for s in states.values()
        )
        batch.finished_at, batch.dispatcher_until, batch.dispatcher = now, None, None
        if not queued or (len(states) == len(queued) and refused):
            batch.status = BatchStatus.FAILED
            batch.note = batch.note or N_(
                "No message could be sent (all numbers skipped or refused)"
            )
        else:
            batch.status = BatchStatus.COMPLETED
        if events.wanted("campaign.finished", session):
            session.flush()
            view = campaigns.batch_out(session, batch).model_dump(mode="json")
            events.emit(session, "campaign.finished", [(f"campaign:{batch.id}", view)])


def dispatch(batch_id: int) -> None:
    """Send a batch (safe to run in several workers at once)."""
    sender = _start(batch_id)
    if sender is None:
        return
    Dispatcher(batch_id, sender).run()
