"""A batch's plain answers are stored set-wise, each judged as if alone."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from relaydesk.automation.models import AutomationRun
from relaydesk.channels.sandbox.runtime import get_emulator
from relaydesk.contacts.models import Contact
from relaydesk.messaging.models import Conversation, Message
from tests.automation.conftest import answers, run_of
from tests.automation.test_pipeline import auto_reply
from tests.conftest import wait_for

Inbound = Callable[..., str]


def waiting_runs(db: Any, inbound: Inbound, numbers: list[str]) -> list[int]:
    """One pending run per customer (the debounce holds their jobs back)."""
    sids = [inbound(number, f"Pytanie od {number}") for number in numbers]
    return [int(wait_for(lambda s=s: run_of(db, s), what="the run").id) for s in sids]


def meanwhile(monkeypatch: pytest.MonkeyPatch, changes: dict[str, Callable[[Any], None]]) -> None:
    """After a run is decided and before its answer is stored: change its customer."""
    from relaydesk.automation import pipeline
    from relaydesk.core.db import session_scope

    real = pipeline._ask

    def ask(run_id: int, token: str, decision: Any, *prepared: Any) -> Any:
        with session_scope() as session:
            number = session.scalar(
                select(AutomationRun.participant).where(AutomationRun.id == run_id)
            )
            if number in changes:
                changes[number](session)
        return real(run_id, token, decision, *prepared)

    monkeypatch.setattr(pipeline, "_ask", ask)


def test_plain_answers_are_stored_together_each_on_its_own_terms(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    rules: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from relaydesk.automation import pipeline
    from relaydesk.core.db import utcnow
    from relaydesk.messaging import service

    rules(debounce_seconds=60)
    auto_reply(api)
    numbers = [f"+4860040000{i}" for i in range(4)]
    run_ids = waiting_runs(db, inbound, numbers)

    def unsubscribe(session: Any) -> None:
        session.execute(
            update(Contact).where(Contact.phone == numbers[1]).values(opted_out_at=utcnow())
        )

    def step_in(session: Any) -> None:
        session.execute(
            update(Conversation)
            .where(Conversation.participant == numbers[2])
            .values(human_replied_at=utcnow())
        )

    meanwhile(monkeypatch, {numbers[1]: unsubscribe, numbers[2]: step_in})
    calls: list[int] = []
    real_send_many = service.send_many

    def send_many(session: Any, requests: list[Any], **kwargs: Any) -> Any:
        calls.append(len(requests))
        return real_send_many(session, requests, **kwargs)

    monkeypatch.setattr(service, "send_many", send_many)
    outcomes = pipeline.run_many(run_ids)
    assert [str(outcomes[run_id]) for run_id in run_ids] == [
        "auto_reply",
        "opted_out",
        "paused",
        "auto_reply",
    ]
    assert calls == [3]  # one store for the three answers to send (the paused one is not)
    runs = {r.participant: r for r in db.scalars(select(AutomationRun))}
    assert "meanwhile" in (runs[numbers[1]].detail or "")
    for number, count in zip(numbers, (1, 0, 0, 1), strict=True):
        assert runs[number].state == "done"
        stored = answers(db, number)
        assert len(stored) == count
        if stored:
            assert runs[number].reply_message_id == stored[0].id
            wait_for(
                lambda m=stored[0].id: db.scalar(select(Message.sid).where(Message.id == m)),
                what="the answer handed to Twilio",
            )
        else:
            assert runs[number].reply_message_id is None


def test_a_batch_that_cannot_be_stored_together_is_stored_one_by_one(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    rules: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from relaydesk.automation import pipeline
    from relaydesk.messaging import service

    rules(debounce_seconds=60)
    auto_reply(api)
    numbers = [f"+4860040010{i}" for i in range(3)]
    run_ids = waiting_runs(db, inbound, numbers)
    real_send_many = service.send_many

    def send_many(session: Any, requests: list[Any], **kwargs: Any) -> Any:
        if len(requests) > 1:
            # Half-written, then a failure: the savepoint takes the half back.
            real_send_many(session, requests[:1], **kwargs)
            raise OSError("disk")
        return real_send_many(session, requests, **kwargs)

    monkeypatch.setattr(service, "send_many", send_many)
    with caplog.at_level(logging.ERROR, logger="relaydesk.automation.pipeline"):
        outcomes = pipeline.run_many(run_ids)
    assert "could not be stored together" in caplog.text
    assert [str(outcomes[run_id]) for run_id in run_ids] == ["auto_reply"] * 3
    for number in numbers:
        [answer] = answers(db, number)  # exactly one each: nothing of the failed try kept
        wait_for(
            lambda m=answer.id: db.scalar(select(Message.sid).where(Message.id == m)),
            what="the answer handed to Twilio",
        )


def test_a_batch_s_answers_are_at_twilio_together_and_a_refusal_stays_its_own(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    rules: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Twilio calls of a batch's answers are in flight together (none waits for
    another's reply), and Twilio refusing one (21614, not a mobile number) fails that
    answer alone: the others are recorded with their SIDs."""
    from relaydesk.automation import pipeline
    from relaydesk.messaging import delivery

    rules(debounce_seconds=60)
    auto_reply(api)
    numbers = ["+48600400300", "+15005550009", "+48600400301", "+48600400302"]
    run_ids = waiting_runs(db, inbound, numbers)
    # Each call waits here until all four are under way: one after the other, the first
    # would wait in vain (and break the barrier).
    together = threading.Barrier(len(numbers), timeout=30)
    real_submit = delivery.submit

    def submit(gateway: Any, snapshot: Any) -> Any:
        together.wait()
        return real_submit(gateway, snapshot)

    monkeypatch.setattr(delivery, "submit", submit)
    # Twilio has been answering in a second lately: each call gets its own thread.
    monkeypatch.setattr(delivery, "_call_seconds", [1.0])
    outcomes = pipeline.run_many(run_ids)
    assert [str(outcomes[run_id]) for run_id in run_ids] == ["auto_reply"] * 4
    emulator = get_emulator()
    for number in numbers:
        [answer] = answers(db, number)
        if number == "+15005550009":
            assert (answer.status, answer.error_code, answer.sid) == ("failed", 21614, None)
            assert emulator.store.for_number(number) == []
        else:
            [at_twilio] = [m for m in emulator.store.for_number(number) if m.to_addr == number]
            assert answer.sid == at_twilio.sid


def test_against_a_twilio_that_answers_at_once_one_thread_makes_the_calls(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    rules: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Threads cost CPU: when Twilio has been answering within a few milliseconds, a
    batch's calls are made one after the other in one thread."""
    from relaydesk.automation import pipeline
    from relaydesk.messaging import delivery

    rules(debounce_seconds=60)
    auto_reply(api)
    numbers = [f"+4860040040{i}" for i in range(4)]
    run_ids = waiting_runs(db, inbound, numbers)
    threads: list[int] = []
    real_submit = delivery.submit

    def submit(gateway: Any, snapshot: Any) -> Any:
        threads.append(threading.get_ident())
        return real_submit(gateway, snapshot)

    monkeypatch.setattr(delivery, "submit", submit)
    monkeypatch.setattr(delivery, "_call_seconds", [0.002])
    outcomes = pipeline.run_many(run_ids)
    assert [str(outcomes[run_id]) for run_id in run_ids] == ["auto_reply"] * 4
    assert threads == [threading.get_ident()] * 4
    for number in numbers:
        [answer] = answers(db, number)
        assert answer.sid is not None
