"""Handing stored messages to Twilio: claim, submit, record — safe through crashes.

A message is claimed with a conditional UPDATE before the Twilio call, so two workers
never submit it together. If a process dies after Twilio accepted a message but before
its SID was stored, the next attempt first asks Twilio whether the message is already
there (`submit_state = "in_flight"`) instead of sending it twice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, Text, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from relaydesk.channels.twilio.account import current_account
from relaydesk.channels.twilio.errors import describe_error
from relaydesk.channels.twilio.gateway import (
    GatewayError,
    RemoteMessage,
    SentMessage,
    TwilioGateway,
    cached_gateway,
)
from relaydesk.contacts import consent
from relaydesk.core import metrics, owners
from relaydesk.core.config import get_settings
from relaydesk.core.db import Base, session_scope, utcnow
from relaydesk.core.i18n import N_
from relaydesk.core.tasks import BULK, enqueue_after_commit, handed_off
from relaydesk.core.vendor import Backoff
from relaydesk.messaging import outgoing, reconcile
from relaydesk.messaging.ingest import lock_sids, opt_out_recipient
from relaydesk.messaging.models import (
    BULK_SOURCES,
    Message,
    MessageEvent,
    MessageStatus,
    SubmitState,
)
from relaydesk.messaging.service import send_time_refusal
from relaydesk.messaging.status import FINAL, can_move

log = logging.getLogger(__name__)


def claim_lease() -> timedelta:
    """How old a claim must be before it counts as abandoned by a dead process."""
    return timedelta(seconds=get_settings().send_claim_lease_seconds)


def get_gateway() -> TwilioGateway:
    """The gateway of the Twilio account in effect (a new client when its credentials change)."""
    account = current_account()
    return cached_gateway(
        account.api_base,
        account.account_sid,
        account.auth_token,
        get_settings().twilio_timeout_seconds,
    )


@dataclass(frozen=True)
class Outcome:
    """What happened to one delivery attempt."""

    state: str  # submitted | refused | retrying | failed | skipped | scheduled
    error: GatewayError | None = None


# Retries are scheduled on the row (next_attempt_at), not slept: a queue's backoff.
RETRY_BACKOFF = Backoff(first=5.0, cap=600.0, jitter=0.2)


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with jitter: ~5 s, 10 s, 20 s … capped at 10 minutes."""
    return RETRY_BACKOFF.delay(attempt)


def deliver(message_id: int, gateway: TwilioGateway | None = None) -> Outcome:
    """Submit one pending message to Twilio and record the answer, in this thread."""
    gateway = gateway or get_gateway()
    taken = _take(message_id)
    if isinstance(taken, Outcome):
        return taken
    snapshot, reconcile = taken
    return _attempt(snapshot, reconcile, gateway)


def deliver_soon(message_id: int) -> None:
    """`deliver` for a queued job (a scheduled send, a reminder, a retry): the claim is
    taken here, the Twilio call made and recorded in the process's call threads, so the
    job's worker thread takes its next job instead of waiting for Twilio's reply.

    At most SEND_CONCURRENCY jobs' calls are in flight at once; past that, this waits
    for one to end. The handed-over work counts as the job still running (tasks'
    `running_jobs`). A process that dies first leaves the claim to the delivery sweep,
    which asks Twilio before sending again, as it does for an automatic answer.
    """
    gateway = get_gateway()  # (an account that cannot be used fails before the claim)
    slots = _job_slots()
    slots.acquire()
    try:
        taken = _take(message_id)
    except BaseException:
        slots.release()
        raise
    if isinstance(taken, Outcome):
        slots.release()
        return
    snapshot, reconcile = taken
    done = handed_off("messaging.deliver")
    try:
        _call_threads().submit(_attempt_handed, snapshot, reconcile, gateway, slots, done)
    except BaseException:
        done()
        slots.release()
        raise


def _attempt_handed(
    snapshot: Snapshot,
    reconcile: bool,
    gateway: TwilioGateway,
    slots: threading.Semaphore,
    done: Callable[[], None],
) -> None:
    """A job's attempt in a call thread (see `deliver_soon`)."""
    try:
        _attempt(snapshot, reconcile, gateway)
    except Exception:
        log.exception("delivery of message %s failed; the sweep takes it over", snapshot.id)
    finally:
        done()
        slots.release()


def _take(message_id: int) -> tuple[Snapshot, bool] | Outcome:
    """Claim the message for an attempt: what its Twilio call needs, and whether an
    earlier attempt may have reached Twilio; or the outcome when there is nothing to send."""
    with session_scope() as session:
        claimed = _claim(session, message_id)
        if claimed is None:
            return Outcome("skipped")
        msg, reconcile = claimed
        # (Not when an earlier attempt may have reached Twilio: that one is reconciled.)
        if msg.scheduled_at is not None and not reconcile and _refused_at_send_time(session, msg):
            return Outcome("refused")
        return Snapshot.of(msg), reconcile


def _attempt(snapshot: Snapshot, reconcile: bool, gateway: TwilioGateway) -> Outcome:
    """The Twilio call of a claimed message (after asking Twilio whether an earlier
    attempt got there, when one may have), and its answer recorded."""
    if reconcile:
        try:
            found = _find_existing(gateway, snapshot)
        except GatewayError as exc:
            # Nothing was sent now, but the earlier attempt may still have landed: the
            # next attempt must ask Twilio again before sending.
            return record_failure(snapshot, exc, may_have_landed=True)
        if found is not None:
            log.info(
                "message %s was already at Twilio as %s; not resending", snapshot.id, found.sid
            )
            # The process that sent it may have died before counting it: Twilio took it.
            metrics.sends_accepted.inc()
            # Callbacks sent while we were down are lost: take Twilio's current status.
            record_sent([Sent(snapshot.id, found.sid, found.status, None, _text(snapshot, found))])
            return Outcome("submitted")
    return deliver_claimed(snapshot, gateway)


def deliver_claimed(snapshot: Snapshot, gateway: TwilioGateway | None = None) -> Outcome:
    """The Twilio call of a message this process claimed, and its answer recorded.

    Claimed by `deliver`, or stored already claimed (`send_many`'s `claimed_for`) by a
    caller that calls this right after its commit: an automatic answer goes to Twilio
    without a transaction of its own to claim it. Dead before the call, the claim is
    released by the sweep, which asks Twilio before sending again.
    """
    if _too_late(snapshot):
        return Outcome("skipped")
    gateway = gateway or get_gateway()
    try:
        answer = submit(gateway, snapshot)
    except GatewayError as exc:
        return record_failure(snapshot, exc)
    record_sent(
        [Sent(snapshot.id, answer.sid, answer.status, answer.num_segments, _text(snapshot, answer))]
    )
    return Outcome("submitted")


def deliver_claimed_many(
    snapshots: list[Snapshot], gateway: TwilioGateway | None = None
) -> list[Outcome]:
    """`deliver_claimed` for several messages: their Twilio calls spread over the
    process's call threads (SEND_CONCURRENCY in flight), then Twilio's answers recorded
    in one transaction (a callback that beats it is applied when the SIDs are stored, as
    for a campaign's batch), and the refusals each in its own.

    A thread makes as many of the calls one after the other as Twilio answers within
    GROUP_SECONDS, judged by how quickly it answered lately: against a Twilio that takes
    a tenth of a second or more, every call has its own thread; against one that answers
    at once (the emulator), this thread makes them all, which costs less CPU than many.
    """
    if len(snapshots) <= 1:
        return [deliver_claimed(snapshot, gateway) for snapshot in snapshots]
    gateway = gateway or get_gateway()
    size = max(1, int(GROUP_SECONDS / max(_call_seconds[0], 1e-4)))
    groups = [snapshots[start : start + size] for start in range(0, len(snapshots), size)]
    later = [_call_threads().submit(_call_each, gateway, group) for group in groups[1:]]
    results = _call_each(gateway, groups[0])  # the first group in this thread
    for call in later:
        results.extend(call.result())
    # A result that is neither Twilio's answer nor its refusal is a bug: that message
    # keeps its claim ("skipped"), and the sweep asks Twilio before sending it again.
    outcomes = [Outcome("skipped")] * len(snapshots)
    sent: list[Sent] = []
    for i, (snapshot, result) in enumerate(zip(snapshots, results, strict=True)):
        if isinstance(result, SentMessage):
            text = _text(snapshot, result)
            sent.append(Sent(snapshot.id, result.sid, result.status, result.num_segments, text))
            outcomes[i] = Outcome("submitted")
    # What Twilio accepted is recorded first, whatever happened to the other calls.
    record_sent(sent)
    for i, (snapshot, result) in enumerate(zip(snapshots, results, strict=True)):
        if isinstance(result, GatewayError):
            outcomes[i] = record_failure(snapshot, result)
    broken = [
        r
        for r in results
        if isinstance(r, Exception) and not isinstance(r, (GatewayError, ClaimTooOld))
    ]
    if broken:
        raise broken[0]
    return outcomes


GROUP_SECONDS = 0.05  # how long one thread's calls, one after the other, may take
_call_seconds = [0.1]  # how long Twilio took to answer a call lately (a moving average)


def _heard_back(started: float) -> float:
    """How long the call begun at `started` took; counted into `_call_seconds`."""
    took = time.perf_counter() - started
    _call_seconds[0] += (took - _call_seconds[0]) / 8
    return took


class ClaimTooOld(Exception):
    """A call not made: its message was claimed too long ago (see `_too_late`)."""


def _too_late(snapshot: Snapshot) -> bool:
    """True when the message was claimed more than half its lease ago (its call waited
    for a thread that long): once the lease runs out another attempt may take it over,
    so this one no longer calls Twilio. The claim stays; the sweep's attempt asks Twilio
    whether the message is there before sending it."""
    waited = time.monotonic() - snapshot.taken
    if waited <= claim_lease().total_seconds() / 2:
        return False
    log.warning(
        "message %s waited %.0f s for its Twilio call; left to the delivery sweep",
        snapshot.id,
        waited,
    )
    return True


def _call_each(gateway: TwilioGateway, group: list[Snapshot]) -> list[SentMessage | Exception]:
    """The Twilio calls of `group`, one after the other: each one's answer or exception."""
    results: list[SentMessage | Exception] = []
    for snapshot in group:
        if _too_late(snapshot):
            results.append(ClaimTooOld())
            continue
        try:
            results.append(submit(gateway, snapshot))
        except Exception as exc:
            results.append(exc)
    return results


_calls: ThreadPoolExecutor | None = None
_calls_size = 0
_calls_lock = threading.Lock()


def _call_threads() -> ThreadPoolExecutor:
    """The process's threads for the Twilio calls of `deliver_claimed_many`, as many as
    SEND_CONCURRENCY (a changed setting, as in tests, gets new ones; the old finish what
    they hold)."""
    global _calls, _calls_size
    size = get_settings().send_concurrency
    with _calls_lock:
        if _calls is None or _calls_size != size:
            if _calls is not None:
                _calls.shutdown(wait=False)
            _calls = ThreadPoolExecutor(size, thread_name_prefix="relaydesk-twilio")
            _calls_size = size
        return _calls


_slots: threading.Semaphore | None = None
_slots_size = 0


def _job_slots() -> threading.Semaphore:
    """How many queued jobs' Twilio calls may be in flight (SEND_CONCURRENCY); a changed
    setting gets a new count, the calls holding the old one give their slot back to it."""
    global _slots, _slots_size
    size = get_settings().send_concurrency
    with _calls_lock:
        if _slots is None or _slots_size != size:
            _slots = threading.Semaphore(size)
            _slots_size = size
        return _slots


def _text(snapshot: Snapshot, answer: SentMessage | RemoteMessage) -> str | None:
    """What the customer reads of a template send, as Twilio rendered it (else None).

    A WhatsApp template (content_sid) is stored with the body the caller gave, often none;
    Twilio fills the template's variables in, so its answer is what the customer received.
    """
    return answer.body if snapshot.content_sid and answer.body else None


def submit(gateway: TwilioGateway, snapshot: Snapshot) -> SentMessage:
    """The Twilio call for a claimed message, nothing else (no database work)."""
    started = time.perf_counter()
    try:
        answer = gateway.create_message(
            to=snapshot.to_addr,
            from_=None if snapshot.service_sid else snapshot.from_addr,
            messaging_service_sid=snapshot.service_sid,
            body=snapshot.body or None,
            media_urls=snapshot.media_urls or None,
            content_sid=snapshot.content_sid,
            content_variables=snapshot.content_variables,
            status_callback=current_account().status_callback_url,
        )
    except Exception:
        _heard_back(started)  # a Twilio that times out is a slow one too
        metrics.sends_failed.inc()
        raise
    metrics.TWILIO_CALL_SECONDS.observe(_heard_back(started))
    metrics.sends_accepted.inc()
    if snapshot.attempts <= 1 and not snapshot.scheduled:
        waited = (utcnow() - snapshot.created_at).total_seconds()
        metrics.SEND_DELAY_SECONDS.labels(snapshot.source or "unknown").observe(max(waited, 0.0))
    return answer


def snapshots(session: Session, message_ids: list[int]) -> dict[int, Snapshot]:
    """What the Twilio calls of these (claimed) messages need, read in one query."""
    rows = session.scalars(select(Message).where(Message.id.in_(message_ids)))
    return {m.id: Snapshot.of(m) for m in rows}


@dataclass(frozen=True)
class Snapshot:
    """A claimed message as the Twilio call sees it (read before the call)."""

    id: int
    attempts: int
    to_addr: str
    from_addr: str
    service_sid: str | None
    body: str
    media_urls: list[str]
    content_sid: str | None
    content_variables: str | None
    created_at: datetime
    source: str = ""
    scheduled: bool = False
    # When it was read, right after its claim (time.monotonic()): see `_too_late`.
    taken: float = field(default_factory=time.monotonic, compare=False)

    @classmethod
    def of(cls, m: Message) -> Snapshot:
        return cls(
            id=m.id,
            attempts=m.attempts,
            to_addr=m.to_addr,
            from_addr=m.from_addr,
            service_sid=m.messaging_service_sid if m.from_addr.startswith("MG") else None,
            body=m.body,
            media_urls=[
                str(item.get("send_url") or item["url"])
                for item in m.media
                if item.get("send_url") or item.get("url")
            ],
            content_sid=m.content_sid,
            content_variables=m.content_variables,
            created_at=m.created_at,
            source=m.source,
            scheduled=m.scheduled_at is not None,
        )


def _claim(session: Session, message_id: int) -> tuple[Message, bool] | None:
    """Take the message for this attempt; also says whether a previous one may have landed."""
    now = utcnow()
    before = session.execute(
        select(Message.attempts, Message.submit_state, Message.status).where(
            Message.id == message_id
        )
    ).first()
    if before is None:
        return None
    # A scheduled message is taken only once its time has come, and from then on it is
    # an ordinary pending message (retried, reconciled); canceling it is no longer possible.
    if before.status == MessageStatus.SCHEDULED:
        due = [Message.status == MessageStatus.SCHEDULED, Message.scheduled_at <= now]
        became: dict[str, object] = {"status": MessageStatus.PENDING, "status_changed_at": now}
    else:
        due, became = [Message.status == MessageStatus.PENDING], {}
    result = session.execute(
        update(Message)
        .where(
            Message.id == message_id,
            *due,
            Message.sid.is_(None),
            Message.attempts == before.attempts,  # nobody claimed it since we looked
            or_(
                Message.submit_started_at.is_(None), Message.submit_started_at < now - claim_lease()
            ),
        )
        .values(
            attempts=Message.attempts + 1,
            submit_started_at=now,
            claimed_by=owners.me(),
            # Remember what we are about to do; a crash leaves this mark behind.
            submit_state=SubmitState.IN_FLIGHT,
            # If this process dies mid-call, the sweeper retries after the lease.
            next_attempt_at=now + claim_lease(),
            updated_at=now,
            **became,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    msg = session.get(Message, message_id)
    assert msg is not None
    session.refresh(msg)
    return msg, before.submit_state == SubmitState.IN_FLIGHT


def release_abandoned(session: Session) -> int:
    """Make the claims of processes that died on this machine due now; returns how many.

    Their Twilio calls died with them, so nobody is waiting for the lease to protect a
    call in flight. The message keeps its in-flight mark: the next attempt still asks
    Twilio whether the call got there before sending anything.
    """
    dead = owners.dead_holders(
        session,
        Message.claimed_by,
        Message.status == MessageStatus.PENDING,
        Message.submit_started_at.is_not(None),
    )
    if not dead:
        return 0
    now = utcnow()
    released = session.execute(
        update(Message)
        .where(
            Message.status == MessageStatus.PENDING,
            Message.submit_started_at.is_not(None),
            Message.claimed_by.in_(dead),
        )
        .values(submit_started_at=None, claimed_by=None, next_attempt_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if released:
        log.warning("took over %s message claim(s) of processes that are gone", released)
    return int(released or 0)


def _refused_at_send_time(session: Session, msg: Message) -> bool:
    """A scheduled message whose customer opted out (or whose window closed) fails unsent."""
    problem = send_time_refusal(session, msg)
    if problem is None:
        return False
    now = utcnow()
    session.execute(
        update(Message)
        .where(Message.id == msg.id)
        .values(
            status=MessageStatus.FAILED,
            error_code=None,
            error_message=N_("Not sent at its scheduled time: %(reason)s")
            % {"reason": problem.message},
            submit_state=SubmitState.NOT_SENT,
            submit_started_at=None,
            next_attempt_at=None,
            status_changed_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    log.info("scheduled message %s not sent: %s", msg.id, problem.message)
    return True


def _find_existing(gateway: TwilioGateway, snap: Snapshot) -> RemoteMessage | None:
    since = snap.created_at - timedelta(minutes=1)
    listed = _listed_body(gateway, snap)
    with session_scope(write=False) as session:
        candidates = gateway.find_sent(to=snap.to_addr, since=since)
        for remote in candidates:
            if listed is None:
                # A template whose text cannot be known: a message of ours it must be.
                if snap.service_sid is None and remote.from_ != snap.from_addr:
                    continue
            elif remote.body != listed:
                continue
            if remote.date_created is not None and remote.date_created < since:
                continue
            known = session.scalar(select(Message.id).where(Message.sid == remote.sid))
            if known is None:
                return remote
    return None


def _listed_body(gateway: TwilioGateway, snap: Snapshot) -> str | None:
    """The body Twilio lists for this send: ours, or its template as Twilio renders it.

    None when the template's text cannot be known (a rich type without one, or a template
    deleted since). A GatewayError reaching Twilio goes to the caller, which asks again
    at the next attempt rather than sending.
    """
    if not snap.content_sid:
        return snap.body
    try:
        template = gateway.fetch_template(snap.content_sid)
    except GatewayError as exc:
        if exc.status == 404:
            return None
        raise
    if not template.body:
        return None
    try:
        values = json.loads(snap.content_variables or "{}")
    except ValueError:
        values = {}
    if not isinstance(values, dict):
        values = {}
    return template.rendered({str(k): str(v) for k, v in values.items()})


@dataclass(frozen=True)
class Sent:
    """Twilio took a message: its SID, status and segments."""

    message_id: int
    sid: str
    status: str
    segments: int | None
    body: str | None = None  # a template's rendered text, to store instead of ours


def record_sent(items: list[Sent]) -> None:
    """Store Twilio's answers for these messages, in one transaction (two statements)."""
    if not items:
        return
    now = utcnow()
    check_at = reconcile.first_check(now)
    with session_scope() as session:
        lock_sids(session, [item.sid for item in items])
        conn = session.connection()
        conn.execute(
            _store_sid,
            [
                {
                    "mid": item.message_id,
                    "new_sid": item.sid,
                    "segments": item.segments,
                    "text": item.body,
                    "at": now,
                    "check_at": check_at,
                }
                for item in items
            ],
        )
        # Twilio's first answer ("queued", "accepted") moves the message on from pending,
        # as apply_status would, one statement for all of them.
        moves = [
            {"mid": item.message_id, "new_status": item.status, "at": now}
            for item in items
            if can_move(MessageStatus.PENDING, item.status)
        ]
        if moves:
            conn.execute(_move_from_pending, moves)
        _replay_early_batch(session, {item.sid: item.message_id for item in items})
        outgoing.messages(session, "message.sent", [item.message_id for item in items])


_messages = Base.metadata.tables["messages"]
_store_sid = (
    update(_messages)
    .where(_messages.c.id == bindparam("mid"))
    .values(
        sid=bindparam("new_sid"),
        submit_state=SubmitState.SUBMITTED,
        next_attempt_at=None,
        status_check_at=bindparam("check_at"),
        error_code=None,
        error_message=None,
        num_segments=func.coalesce(bindparam("segments", type_=Integer), _messages.c.num_segments),
        body=func.coalesce(bindparam("text", type_=Text), _messages.c.body),
        updated_at=bindparam("at"),
    )
)
_move_from_pending = (
    update(_messages)
    .where(_messages.c.id == bindparam("mid"), _messages.c.status == MessageStatus.PENDING)
    .values(
        status=bindparam("new_status"),
        status_changed_at=bindparam("at"),
        updated_at=bindparam("at"),
    )
)


def _replay_early_batch(session: Session, by_sid: dict[str, int]) -> None:
    """Apply the callbacks that arrived before these SIDs were stored, set-wise.

    With a fast sender the first callbacks often beat the batch that records the SIDs;
    the minute sweep catches the rest. The caller holds the SIDs' locks. The same rule
    as for any callback applies (a status only moves forward), worked out here per
    message, then written with one statement per table.
    """
    events = session.execute(
        select(
            MessageEvent.id,
            MessageEvent.sid,
            MessageEvent.status,
            MessageEvent.error_code,
            MessageEvent.received_at,
        )
        .where(MessageEvent.sid.in_(list(by_sid)), MessageEvent.message_id.is_(None))
        .order_by(MessageEvent.id)
    ).all()
    if not events:
        return
    ids = sorted({by_sid[e.sid] for e in events})
    current: dict[int, str] = {
        mid: status
        for mid, status in session.execute(
            select(Message.id, Message.status).where(Message.id.in_(ids))
        )
    }
    moved: dict[int, dict[str, Any]] = {}
    marks = []
    for event in events:
        mid = by_sid[event.sid]
        applied = mid in current and can_move(current[mid], event.status)
        if applied:
            current[mid] = event.status
            change = moved.setdefault(mid, {})
            change.update(status=event.status, at=event.received_at)
            if event.error_code:
                change["error_code"] = event.error_code
        marks.append({"eid": event.id, "mid": mid, "done": applied})
    conn = session.connection()
    conn.execute(_mark_event, marks)
    for mid, change in moved.items():
        values: dict[str, Any] = {
            "status": change["status"],
            "status_changed_at": change["at"],
            "updated_at": change["at"],
        }
        if change["status"] in FINAL:
            values["status_check_at"] = None
        code = change.get("error_code")
        if code:
            values["error_code"] = code
            values["error_message"] = describe_error(code)
        session.execute(
            update(Message)
            .where(Message.id == mid)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if consent.means_unsubscribed(code):
            opt_out_recipient(session, mid, f"Twilio error {code}")


_events = Base.metadata.tables["message_events"]
_mark_event = (
    update(_events)
    .where(_events.c.id == bindparam("eid"))
    .values(message_id=bindparam("mid"), applied=bindparam("done"))
)


def replay_orphan_events(session: Session, limit: int = 500) -> int:
    """Apply kept callbacks whose message became known later; returns messages touched."""
    pairs = session.execute(
        select(Message.id, Message.sid)
        .join(MessageEvent, MessageEvent.sid == Message.sid)
        .where(MessageEvent.message_id.is_(None))
        .distinct()
        .limit(limit)
    ).all()
    by_sid = {sid: message_id for message_id, sid in pairs if sid is not None}
    if by_sid:
        lock_sids(session, list(by_sid))
        _replay_early_batch(session, by_sid)
    return len(by_sid)


def record_failure(snap: Snapshot, exc: GatewayError, *, may_have_landed: bool = False) -> Outcome:
    """Record a refused or failed Twilio call: give up, or retry later with backoff.

    `may_have_landed`: an earlier attempt may have reached Twilio (this failure was the
    check for it), so the message stays marked for reconciling whatever this error was.
    """
    max_attempts = get_settings().max_send_attempts
    now = utcnow()
    with session_scope() as session:
        if exc.permanent or snap.attempts >= max_attempts:
            message = (
                exc.message
                if exc.permanent
                else N_("Gave up after %(attempts)s attempts: %(reason)s")
                % {"attempts": snap.attempts, "reason": exc.message}
            )
            session.execute(
                update(Message)
                .where(Message.id == snap.id)
                .values(
                    status=MessageStatus.FAILED,
                    error_code=exc.code,
                    error_message=describe_error(exc.code) if exc.code else message,
                    submit_state=SubmitState.REFUSED if exc.permanent else SubmitState.IN_FLIGHT,
                    submit_started_at=None,
                    next_attempt_at=None,
                    status_changed_at=now,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if consent.means_unsubscribed(exc.code):
                opt_out_recipient(session, snap.id, f"Twilio error {exc.code}")
            # Refused or given up: the message is failed, as a callback would say.
            outgoing.messages(session, "message.status", [snap.id])
            return Outcome("refused" if exc.permanent else "failed", exc)
        delay = backoff_seconds(snap.attempts)
        session.execute(
            update(Message)
            .where(Message.id == snap.id)
            .values(
                error_code=exc.code,
                error_message=N_("Attempt %(attempt)s failed, retrying: %(reason)s")
                % {"attempt": snap.attempts, "reason": exc.message},
                submit_state=(
                    SubmitState.IN_FLIGHT
                    if exc.ambiguous or may_have_landed
                    else SubmitState.NOT_SENT
                ),
                submit_started_at=None,
                next_attempt_at=now + timedelta(seconds=delay),
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        # A campaign's retries stay with bulk work, behind nobody's answer.
        queue = BULK if snap.source in BULK_SOURCES else None
        enqueue_after_commit(session, "messaging.deliver", snap.id, delay=delay, queue=queue)
    log.warning(
        "message %s attempt %s failed (%s); retry in %.0fs",
        snap.id,
        snap.attempts,
        exc.message,
        delay,
    )
    return Outcome("retrying", exc)
