"""The one automation pipeline: what (if anything) answers an inbound message.

The precedence is policy.py's, the model call answering.py's, the cost usage.py's.

Exactly one answer per inbound message: the run row is unique per message, a worker
claims it under a random token with a lease, the model is called with no transaction
open, and the answer is stored in the same transaction that marks the run done under
that token. A worker that died mid-job leaves an expired lease that the sweep hands
to another worker; a slow worker that lost its lease cannot store a second answer.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache, partial
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from relaydesk.automation import model_calls
from relaydesk.automation import settings as cfg
from relaydesk.automation.answering import Answer, Prepared, ask, needs_model, prepare
from relaydesk.automation.handover import hand_over
from relaydesk.automation.models import (
    AutomationRun,
    RunOutcome,
    RunState,
)
from relaydesk.automation.policy import (
    OUT_OF_OFFICE_SENT,
    Decision,
    decide,
    read_batch,
    stepped_back,
)
from relaydesk.automation.usage import add_usage, note_usage, record_usage, track_session
from relaydesk.contacts.consent import opt_out_keyword
from relaydesk.contacts.models import Contact
from relaydesk.core import owners
from relaydesk.core.config import get_settings
from relaydesk.core.db import session_scope, utcnow
from relaydesk.core.errors import OptedOut, RelaydeskError
from relaydesk.core.i18n import N_
from relaydesk.core.tasks import enqueue_after_commit, on_stop
from relaydesk.media import service as media
from relaydesk.messaging import delivery
from relaydesk.messaging import service as messaging
from relaydesk.messaging.hooks import NewInbound
from relaydesk.messaging.models import Conversation, Message

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3


def queue_for(session: Session, message: Message) -> None:
    """Create the message's run and queue it (called in the transaction that claims it).

    A run due at once joins the other runs its transaction queues in one job (a batch
    of webhooks: `run_many`); a debounced run waits for its window in a job of its own.
    """
    _queue(session, [message])


def queue_for_many(session: Session, messages: Sequence[Message | NewInbound]) -> None:
    """`queue_for` of several messages (rows, or as their webhooks' transaction stored
    them), their runs created by one statement."""
    _queue(session, messages)


def _queue(session: Session, messages: Sequence[Message | NewInbound]) -> None:
    if not messages:
        return
    now = utcnow()
    conn = session.connection()
    rows = [
        {
            "inbound_message_id": message.id,
            "conversation_id": message.conversation_id,
            "participant": message.participant,
            "state": RunState.PENDING,
            "attempts": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "created_at": now,
        }
        for message in messages
    ]
    # One cached statement, many rows (not a statement compiled for each batch's rows).
    created: dict[int, int] = dict(conn.execute(_insert_runs(conn.dialect.name), rows).all())
    if not created:
        return
    debounce = cfg.read_rules(session).debounce_seconds
    for message in messages:
        run_id = created.get(message.id)
        if run_id is None:
            continue  # the message has its run already
        keyword = opt_out_keyword(message.body, (message.raw or {}).get("OptOutType"))
        if keyword or not debounce:
            enqueue_after_commit(session, "automation.runs", [run_id], merge=True)
        else:
            enqueue_after_commit(session, "automation.run", run_id, delay=debounce)


def run(run_id: int, *, concurrent: bool = False) -> RunOutcome | None:
    """Decide, ask the model if needed, and store at most one answer; returns the outcome.

    `concurrent` (the worker's job): an answer that needs the model is handed, claimed,
    to the model threads (`model_calls`), and None is returned at once.
    """
    return run_many([run_id], concurrent=concurrent).get(run_id)


def run_many(run_ids: list[int], *, concurrent: bool = False) -> dict[int, RunOutcome | None]:
    """`run` for several runs, set-wise: one transaction claims them all, one reads
    their decisions, one stores their answers and one records Twilio's answers to
    them. Each run is still decided, re-checked and stored on its own terms; an
    answer that needs the model goes its own way (`concurrent`). The outcome of each
    run claimed here (None: handed to the model threads, or its claim was lost)."""
    token = secrets.token_hex(8)
    now = utcnow()
    lease = timedelta(seconds=get_settings().automation_lease_seconds)
    with session_scope() as session:
        claimed = session.scalars(
            update(AutomationRun)
            .where(
                AutomationRun.id.in_(run_ids),
                or_(
                    AutomationRun.state == RunState.PENDING,
                    and_(AutomationRun.state == RunState.WORKING, AutomationRun.lease_until < now),
                ),
            )
            .values(
                state=RunState.WORKING,
                claim_token=token,
                claimed_by=owners.me(),
                lease_until=now + lease,
                attempts=AutomationRun.attempts + 1,
            )
            .returning(AutomationRun.id)
            .execution_options(synchronize_session=False)
        ).all()
        found = session.execute(
            select(AutomationRun.id, AutomationRun.attempts, Message.id, Message.num_media > 0)
            .select_from(AutomationRun)
            .outerjoin(Message, Message.id == AutomationRun.inbound_message_id)
            .where(AutomationRun.id.in_(claimed))
            .order_by(AutomationRun.id)
        ).all()
    outcomes: dict[int, RunOutcome | None] = {}
    answers: list[tuple[int, str, Answer]] = []
    to_decide: list[int] = []
    for run_id, attempts, message_id, with_files in found:
        # Only a message with files can make its answer wait (no extra transaction otherwise).
        if with_files and _waits_for_media(run_id, token, message_id):
            outcomes[run_id] = RunOutcome.WAITING
        elif attempts is not None and attempts > MAX_ATTEMPTS:
            gave_up = N_("gave up after %(count)d interrupted attempts") % {"count": MAX_ATTEMPTS}
            answers.append((run_id, token, Answer(RunOutcome.FAILED, detail=gave_up)))
        else:
            to_decide.append(run_id)
    decisions: list[tuple[int, Decision]] = []
    if to_decide:
        with session_scope(write=False) as session:
            try:
                read_batch(session, to_decide)
            except Exception:
                log.exception("automation runs %s could not be read together", to_decide)
                session.rollback()  # each is read on its own
            for run_id in to_decide:
                try:
                    decisions.append((run_id, decide(session, run_id)))
                except Exception:
                    # This run alone keeps its claim: the sweep hands it over after its
                    # lease; the others of the batch go on.
                    log.exception("automation run %s could not be decided", run_id)
                    session.rollback()
            prepared: dict[int, Prepared] = {}
            try:
                prepared = prepare(session, decisions)
            except Exception:
                log.exception("automation runs %s could not be prepared together", to_decide)
                session.rollback()  # each model call reads its own
        for run_id, decision in decisions:
            if concurrent and needs_model(decision):
                _hand_to_model(run_id, token, decision, now, prepared.get(run_id))
                outcomes[run_id] = None
            else:
                answers.append((run_id, token, _ask(run_id, token, decision, prepared.get(run_id))))
    outcomes.update(_finish_many(answers, later=concurrent))
    return outcomes


def _hand_to_model(
    run_id: int, token: str, decision: Decision, claimed_at: datetime, prepared: Prepared | None
) -> None:
    with _held_lock:
        _held[run_id] = token
    model_calls.pool().submit(
        lambda: _answer_later(run_id, token, decision, claimed_at, prepared),
        f"automation run {run_id}",
    )


# Runs handed to the model threads and not finished yet: run id -> claim token.
_held: dict[int, str] = {}
_held_lock = threading.Lock()


@on_stop
def hand_back() -> int:
    """Give the runs held by the model threads back to the queue (the worker stops):
    another worker answers them at once instead of after their lease. A model call
    already under way goes on, but its claim is gone: it stores nothing."""
    with _held_lock:
        held = dict(_held)
        _held.clear()
    if not held:
        return 0
    released = 0
    with session_scope() as session:
        for run_id, token in held.items():
            released += _give_back(session, run_id, token)
            enqueue_after_commit(session, "automation.run", run_id)
    log.info("handed %s automation run(s) waiting for the model back to the queue", released)
    return released


def _ask(run_id: int, token: str, decision: Decision, prepared: Prepared | None = None) -> Answer:
    journal = partial(_journal, run_id, token)
    return ask(decision, run_id, journal=journal, prepared=prepared)


def _answer_later(
    run_id: int, token: str, decision: Decision, claimed_at: datetime, prepared: Prepared | None
) -> None:
    """A handed-over run's model call and answer, in a model thread. A run that waited
    for more than half its lease renews it first, and is left alone if the sweep took
    it over meanwhile."""
    with _held_lock:
        if _held.get(run_id) != token:
            return  # handed back when the worker stopped
    try:
        _answer_held(run_id, token, decision, claimed_at, prepared)
    finally:
        with _held_lock:
            if _held.get(run_id) == token:
                del _held[run_id]


def _answer_held(
    run_id: int, token: str, decision: Decision, claimed_at: datetime, prepared: Prepared | None
) -> None:
    lease = timedelta(seconds=get_settings().automation_lease_seconds)
    now = utcnow()
    if now - claimed_at > lease / 2:
        with session_scope() as session:
            renewed = session.execute(
                update(AutomationRun)
                .where(
                    AutomationRun.id == run_id,
                    AutomationRun.claim_token == token,
                    AutomationRun.state == RunState.WORKING,
                )
                .values(lease_until=now + lease)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
        if not renewed:
            log.info("automation run %s was taken over while it waited for the model", run_id)
            return
    _finished.add(run_id, token, _ask(run_id, token, decision, prepared))


STORE_CHUNK = 50  # answers a transaction of the funnel stores at most (the first go out sooner)


class _Funnel:
    """The answers of the model threads, stored set-wise by one thread at a time.

    A model thread with an answer adds it here; if no thread is storing, it stores what
    is waiting (its own answer and any that came meanwhile) in one transaction, and
    again until nothing waits; the sender threads hand the stored answers to Twilio.
    Answers that come together (a batch of webhooks, a fast model) share their
    transactions, and the model threads never queue for the write lock with a database
    connection each while the writer they wait for needs one.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting: list[tuple[int, str, Answer]] = []
        self.storing = False

    def add(self, run_id: int, token: str, answer: Answer) -> None:
        with self.lock:
            self.waiting.append((run_id, token, answer))
            if self.storing:
                return
            self.storing = True
        while True:
            with self.lock:
                batch, self.waiting = self.waiting[:STORE_CHUNK], self.waiting[STORE_CHUNK:]
                if not batch:
                    self.storing = False
                    return
            try:
                stored = _store(batch)
            except Exception:
                runs = ", ".join(str(run_id) for run_id, _, _ in batch)
                log.exception("automation runs %s could not be stored; the sweep retries", runs)
                continue
            _send_later([reply for _, reply in stored.values() if reply is not None])


def _send_later(replies: list[delivery.Snapshot]) -> None:
    """Hand stored answers to Twilio in a sender thread (their calls at once, Twilio's
    answers recorded together). They are claimed for their delivery by this process: if
    it dies first, the delivery sweep takes them over."""
    if replies:
        model_calls.senders().submit(partial(delivery.deliver_claimed_many, replies), "answers")


_finished = _Funnel()


def _journal(run_id: int, token: str, calls: list[dict[str, Any]]) -> None:
    """Keep the tool calls made so far on the run (while the claim holds), so that a
    retry after a crash does not make them again."""
    with session_scope() as session:
        session.execute(
            update(AutomationRun)
            .where(AutomationRun.id == run_id, AutomationRun.claim_token == token)
            .values(tool_calls=calls)
            .execution_options(synchronize_session=False)
        )


def _waits_for_media(run_id: int, token: str, message_id: int) -> bool:
    """Hand the run back while its message's files are still being fetched and understood.

    The media job queues `automation.resume` when it is done; the sweep is the net.
    """
    with session_scope(write=False) as session:
        message = session.get(Message, message_id)
        if message is None or not media.should_wait(session, message):
            return False
    with session_scope() as session:
        _give_back(session, run_id, token)
    return True


def _give_back(session: Session, run_id: int, token: str) -> int:
    """Release this claim of the run unused (pending again, the attempt not counted);
    1 if it still held."""
    released = session.execute(
        update(AutomationRun)
        .where(
            AutomationRun.id == run_id,
            AutomationRun.claim_token == token,
            AutomationRun.state == RunState.WORKING,
        )
        .values(
            state=RunState.PENDING,
            claim_token=None,
            claimed_by=None,
            lease_until=None,
            attempts=AutomationRun.attempts - 1,
        )
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    return int(released or 0)


def resume(message_id: int) -> None:
    """Run the answer that waited for this message's files (if it is still waiting);
    the worker's job, so a model's answer goes to the model threads."""
    with session_scope(write=False) as session:
        found = session.execute(
            select(AutomationRun.id, AutomationRun.created_at).where(
                AutomationRun.inbound_message_id == message_id,
                AutomationRun.state == RunState.PENDING,
            )
        ).first()
        debounce = timedelta(seconds=cfg.read_rules(session).debounce_seconds)
    # Still inside its burst window: the run's own delayed job comes then.
    if found is not None and found.created_at + debounce <= utcnow():
        run(found.id, concurrent=True)


def _finish(run_id: int, token: str, answer: Answer) -> RunOutcome | None:
    """`_finish_many` of one run."""
    return _finish_many([(run_id, token, answer)]).get(run_id)


def _finish_many(
    answers: list[tuple[int, str, Answer]], *, later: bool = False
) -> dict[int, RunOutcome | None]:
    """Store the runs' outcomes and answers, then hand the answers to Twilio: here, or
    (`later`) in the sender threads, so that a worker thread takes its next job instead
    of waiting for Twilio's replies.

    The answers are stored already claimed for their delivery by this process, so their
    Twilio calls follow the commit, with no job and no claim of their own. A run whose
    claim (run id, token) was lost meanwhile stores nothing (None).
    """
    if not answers:
        return {}
    stored = _store(answers)
    replies = [reply for _, reply in stored.values() if reply is not None]
    if later:
        _send_later(replies)
    else:
        delivery.deliver_claimed_many(replies)
    return {run_id: stored[run_id][0] if run_id in stored else None for run_id, _, _ in answers}


def _store(
    answers: list[tuple[int, str, Answer]],
) -> dict[int, tuple[RunOutcome, delivery.Snapshot | None]]:
    """Store each run's outcome and answer, in one transaction, only while its claim holds.

    A run that cannot be stored (a database error) is rolled back alone and keeps its
    claim: the sweep gives it to another attempt once its lease is over.
    """
    now = utcnow()
    stored: dict[int, tuple[RunOutcome, delivery.Snapshot | None]] = {}
    with session_scope() as session:
        # The runs, their messages, conversations and contacts in one query (the send
        # needs no lookup of its own for the conversation it answers in).
        rows = {
            found[0].id: found
            for found in session.execute(
                select(AutomationRun, Message, Conversation, Contact)
                .outerjoin(Message, Message.id == AutomationRun.inbound_message_id)
                .outerjoin(Conversation, Conversation.id == Message.conversation_id)
                .outerjoin(Contact, Contact.id == Conversation.contact_id)
                .where(AutomationRun.id.in_([run_id for run_id, _, _ in answers]))
            ).all()
        }
        rules = cfg.read_rules(session)
        held = [
            (run_id, answer, found)
            for run_id, token, answer in answers
            if (found := rows.get(run_id)) is not None
            and found[0].state == RunState.WORKING
            and found[0].claim_token == token  # else another worker took over after our lease
        ]
        plain = [item for item in held if _plain(item[1])]
        alone = [item for item in held if not _plain(item[1])]
        if len(plain) > 1:
            try:
                with session.begin_nested():
                    together = _store_together(session, plain, rules, now)
                stored.update(together)
                plain = []
            except Exception:
                ids = [run_id for run_id, _, _ in plain]
                log.exception("automation runs %s could not be stored together", ids)
        for run_id, answer, found in [*plain, *alone]:
            try:
                with session.begin_nested():
                    stored[run_id] = _store_one(session, found, answer, rules, now)
            except Exception:
                log.exception("automation run %s could not be stored; the sweep retries it", run_id)
    return stored


def _plain(answer: Answer) -> bool:
    """An answer that is only a text to send (or nothing): stored set-wise with others."""
    job = answer.job
    return (
        answer.ooo_period is None
        and answer.hand_over is None
        and (job is None or job.assistant_id is None)  # no assistant session to track
    )


def _store_together(
    session: Session, plain: list[tuple[int, Answer, Any]], rules: cfg.Rules, now: datetime
) -> dict[int, tuple[RunOutcome, delivery.Snapshot | None]]:
    """`_store_one` of plain answers, set-wise: their messages are stored by one
    `send_many`, their runs closed together. Each is judged as alone (a person who
    stepped in, an unsubscribe meanwhile)."""
    closed: dict[int, tuple[RunOutcome, str | None, int | None]] = {}
    to_send: list[tuple[int, Answer, Any]] = []
    for run_id, answer, found in plain:
        _, message, conversation, _ = found
        if not answer.text or message is None or message.conversation_id is None:
            closed[run_id] = (answer.outcome, answer.detail, None)
            continue
        blocked = stepped_back(conversation, rules)
        if blocked is not None and answer.outcome != RunOutcome.KEYWORD_REPLY:
            closed[run_id] = (blocked.outcome, blocked.detail, None)
        else:
            to_send.append((run_id, answer, found))
    sent = messaging.send_many(
        session,
        [_request(found[2], answer) for _, answer, found in to_send],
        claimed_for=delivery.claim_lease(),
        known=[(found[3], found[2]) for _, _, found in to_send if found[3] is not None],
    )
    ids = [outcome for outcome in sent if isinstance(outcome, int)]
    replies = {
        m.id: delivery.Snapshot.of(m)
        for m in session.scalars(select(Message).where(Message.id.in_(ids)))
    }
    for (run_id, answer, _), result in zip(to_send, sent, strict=True):
        if isinstance(result, int):
            closed[run_id] = (answer.outcome, answer.detail, result)
        else:
            closed[run_id] = (*_refused(result), None)
    usage = []
    merged = []
    for run_id, answer, (row, message, _, _) in plain:
        outcome, detail, reply_id = closed[run_id]
        _close(row, outcome, detail, reply_id, answer, now)
        note_usage(row, answer.usage)
        usage.extend(answer.usage)
        if reply_id is not None:
            merged.append({"cid": message.conversation_id, "rid": reply_id, "below": row.id})
    if usage:
        add_usage(session, usage)
    if merged:
        session.execute(_ANSWER_MERGED, merged)
    return {
        run_id: (outcome, replies.get(reply_id) if reply_id is not None else None)
        for run_id, (outcome, _, reply_id) in closed.items()
    }


_runs = cast(Table, AutomationRun.__table__)


@lru_cache(maxsize=2)
def _insert_runs(dialect: str) -> Any:
    """New runs, one per message (a message that has its run already is left alone)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(_runs)
        .on_conflict_do_nothing(index_elements=["inbound_message_id"])
        .returning(_runs.c.inbound_message_id, _runs.c.id)
    )


# The runs merged into an answered run (earlier messages of its burst) point to its answer.
_ANSWER_MERGED = (
    update(_runs)
    .where(
        _runs.c.conversation_id == bindparam("cid"),
        _runs.c.outcome == RunOutcome.MERGED,
        _runs.c.reply_message_id.is_(None),
        _runs.c.id < bindparam("below"),
    )
    .values(reply_message_id=bindparam("rid"))
)


def _close(
    row: AutomationRun,
    outcome: RunOutcome,
    detail: str | None,
    reply_id: int | None,
    answer: Answer,
    now: datetime,
) -> None:
    """The run is done: its outcome, why, and its answer."""
    row.state, row.outcome, row.detail = RunState.DONE, outcome, (detail or None)
    row.reply_message_id, row.finished_at, row.lease_until = reply_id, now, None
    row.knowledge = answer.knowledge
    row.tool_calls = answer.tool_calls


def _store_one(
    session: Session,
    found: Any,
    answer: Answer,
    rules: cfg.Rules,
    now: datetime,
) -> tuple[RunOutcome, delivery.Snapshot | None]:
    row, message, conversation, contact = found
    outcome, detail, reply = answer.outcome, answer.detail, None
    if answer.text and message is not None and message.conversation_id is not None:
        assert conversation is not None
        # A person may have stepped in while the model was thinking; an unsubscribe
        # meanwhile is refused by the send itself.
        blocked = stepped_back(conversation, rules)
        if blocked is not None and answer.outcome != RunOutcome.KEYWORD_REPLY:
            outcome, detail = blocked.outcome, blocked.detail
        else:
            send = _send if answer.ooo_period is None else _send_out_of_office
            reply, problem = send(session, conversation, contact, answer)
            if problem:
                outcome, detail = problem
    reply_id = reply.id if reply is not None else None
    if answer.hand_over is not None and conversation is not None:
        hand_over(session, conversation, answer.hand_over, row.id, now)
    _close(row, outcome, detail, reply_id, answer, now)
    record_usage(session, row, answer.usage)
    if message is not None and message.conversation_id is not None:
        track_session(session, message, answer, reply_id, now)
        if reply_id is not None:
            session.execute(
                _ANSWER_MERGED,
                {"cid": message.conversation_id, "rid": reply_id, "below": row.id},
            )
    return outcome, reply


def _send_out_of_office(
    session: Session, conversation: Conversation, contact: Contact | None, answer: Answer
) -> tuple[delivery.Snapshot | None, tuple[RunOutcome, str] | None]:
    """`_send`, once per conversation per closed period: the period is claimed first.

    The claim is a conditional UPDATE in the transaction that stores the answer: of two
    runs of one conversation in one closed period (here or in another process), the
    second finds the period taken and sends nothing. An answer that could not be sent
    gives the claim back, so a later message of the period may still get one.
    """
    assert answer.ooo_period is not None
    savepoint = session.begin_nested()
    claimed = session.execute(
        update(Conversation)
        .where(
            Conversation.id == conversation.id,
            or_(
                Conversation.ooo_period_start.is_(None),
                Conversation.ooo_period_start != answer.ooo_period,
            ),
        )
        .values(ooo_period_start=answer.ooo_period)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not claimed:
        savepoint.rollback()
        return None, (RunOutcome.OUT_OF_OFFICE, OUT_OF_OFFICE_SENT)
    reply, problem = _send(session, conversation, contact, answer)
    if problem:
        savepoint.rollback()
    else:
        savepoint.commit()
    return reply, problem


def _send(
    session: Session, conversation: Conversation, contact: Contact | None, answer: Answer
) -> tuple[delivery.Snapshot | None, tuple[RunOutcome, str] | None]:
    """Store the answer through the one send function, claimed for its delivery here;
    (what its Twilio call needs, or outcome and why)."""
    try:
        with session.begin_nested():
            sent = messaging.send(
                session,
                _request(conversation, answer),
                claimed_for=delivery.claim_lease(),
                known=(contact, conversation) if contact is not None else None,
            )
    except RelaydeskError as exc:
        return None, _refused(exc)
    return delivery.Snapshot.of(sent), None


def _request(conversation: Conversation, answer: Answer) -> messaging.SendRequest:
    """The answer as sent: to the customer, from the number they wrote to."""
    assert answer.text is not None
    to = conversation.participant
    if conversation.channel == "whatsapp":
        to = f"whatsapp:{to}"
    return messaging.SendRequest(
        to=to,
        body=answer.text,
        media_urls=answer.media_urls,
        source=answer.source or "auto_reply",
        from_=conversation.our_address,
    )


def _refused(exc: RelaydeskError) -> tuple[RunOutcome, str]:
    """The run's outcome when its answer could not be stored for sending, and why."""
    if isinstance(exc, OptedOut):
        return RunOutcome.OPTED_OUT, N_("the customer unsubscribed meanwhile")
    return RunOutcome.FAILED, N_("the answer could not be sent: %(reason)s") % {
        "reason": exc.message
    }
