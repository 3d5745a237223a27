"""An automatic answer takes one queue hop: its run is created in the transaction that
stores its webhook, and the run's job decides and stores the answer and hands it to
a sender thread for its Twilio call (no further queue hops: under load each hop waited
for CPU; and the worker thread does not wait for Twilio's reply).

The guarantees stay those of the queue: a job that fails is logged and the sweeps
recover its work. The answers to a batch of webhooks follow as one job that does their
database work set-wise; an answer that needs a model waits for it in the model threads,
so the others do not wait for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from relaydesk.automation.models import RunState
from relaydesk.core import tasks
from relaydesk.messaging.models import Message
from relaydesk.messaging.writer import get_writer
from tests.automation.conftest import answers, finished, run_of
from tests.automation.test_pipeline import auto_reply
from tests.conftest import wait_for

Inbound = Callable[..., str]


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[Any]]]:
    """The threads the three steps of an answer ran in, and the jobs queued meanwhile."""
    from relaydesk.automation import pipeline
    from relaydesk.messaging import delivery

    seen: dict[str, list[Any]] = {"inbound": [], "run": [], "deliver": [], "queued": []}

    def spy(key: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            seen[key].append(threading.get_ident())
            return func(*args, **kwargs)

        return wrapped

    # The automation's inbound handler, called in the webhook's transaction (for a batch
    # of messages at once: once for each of them).
    monkeypatch.setattr(pipeline, "queue_for", spy("inbound", pipeline.queue_for))
    queue_for_many = pipeline.queue_for_many

    def spied_many(session: Any, messages: list[Any]) -> None:
        seen["inbound"].extend([threading.get_ident()] * len(messages))
        queue_for_many(session, messages)

    monkeypatch.setattr(pipeline, "queue_for_many", spied_many)
    monkeypatch.setattr(pipeline, "run", spy("run", pipeline.run))
    # The answer is stored claimed for its delivery: its Twilio call follows in the thread.
    monkeypatch.setattr(delivery, "deliver_claimed", spy("deliver", delivery.deliver_claimed))
    real = tasks._registry.wrappers.copy()
    for (queue, name), wrapper in real.items():
        if name in ("automation.run", "messaging.deliver"):

            class Counting:
                def __init__(self, wrapper: Any, name: str) -> None:
                    self.wrapper, self.name = wrapper, name

                def __call__(self, *args: Any, **kwargs: Any) -> Any:
                    seen["queued"].append(self.name)
                    return self.wrapper(*args, **kwargs)

                def __getattr__(self, attr: str) -> Any:
                    return getattr(self.wrapper, attr)

            monkeypatch.setitem(tasks._registry.wrappers, (queue, name), Counting(wrapper, name))
    yield seen


def test_the_run_is_queued_by_its_webhook_and_answered_in_one_thread(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    rules: Callable[..., Any],
    threads: dict[str, list[Any]],
) -> None:
    rules()
    auto_reply(api)
    sid = inbound("+48600200301", "Czy jesteście otwarci?")
    run = finished(db, sid)
    [answer] = answers(db, "+48600200301")
    wait_for(
        lambda: db.scalar(select(Message.sid).where(Message.id == answer.id)),
        what="the answer handed to Twilio",
    )
    assert run.outcome == "auto_reply"
    assert threads["inbound"] == [get_writer().thread_ident]  # in the webhook's transaction
    assert len(threads["run"]) == 1
    # The Twilio call is made in a sender thread (the worker thread takes its next job
    # meanwhile: Twilio takes its time to reply), handed over directly, not queued.
    assert len(threads["deliver"]) == 1
    assert threads["deliver"] != threads["run"]
    assert threads["queued"] == []  # neither step went through the queue
    # The message needs no follow-up job: its handler's work was done as it was stored.
    assert db.scalar(select(Message.processed_at).where(Message.sid == sid)) is not None


def test_a_follower_that_fails_is_logged_and_the_sweep_answers(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    rules: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from relaydesk.automation import pipeline
    from relaydesk.automation import tasks as automation_tasks
    from relaydesk.messaging import hooks

    rules()
    auto_reply(api)
    # The run made by the webhook's follow-up job (as for a message with files, or when
    # the handler failed while the webhook was stored), which its job follows.
    monkeypatch.delitem(hooks._at_store, "automation")
    real = pipeline.run
    monkeypatch.setattr(pipeline, "run", lambda run_id, **_: (_ for _ in ()).throw(OSError("disk")))
    with caplog.at_level(logging.ERROR, logger="relaydesk.core.tasks"):
        sid = inbound("+48600200302", "Halo?")
        wait_for(lambda: "automation.run" in caplog.text, what="the failure logged")
    run = run_of(db, sid)
    assert run is not None and run.state == RunState.PENDING
    assert answers(db, "+48600200302") == []
    # The webhook's own job was not undone by its follower's failure.
    assert db.scalar(select(Message.processed_at).where(Message.sid == sid)) is not None
    monkeypatch.setattr(pipeline, "run", real)
    monkeypatch.setattr(automation_tasks, "LOST_AFTER", automation_tasks.LOST_AFTER * 0)
    automation_tasks.sweep()  # the net for a run whose job was lost
    assert finished(db, sid).outcome == "auto_reply"
    assert len(answers(db, "+48600200302")) == 1


def store_batch(numbers: list[str]) -> list[int]:
    """One batch of webhooks, as the webhook writer stores it (one transaction)."""
    from relaydesk.core.db import session_scope
    from relaydesk.messaging import ingest

    with session_scope() as session:
        return ingest.store_inbound(
            session,
            [
                ingest.read_inbound(
                    {
                        "MessageSid": f"SMbatch{number[1:]:0>28}",
                        "AccountSid": "AC" + "0" * 32,
                        "From": number,
                        "To": "+48221234567",
                        "Body": "Dzień dobry",
                        "NumMedia": "0",
                    }
                )
                for number in numbers
            ],
        )


def test_the_answers_to_a_batch_of_webhooks_are_made_together_in_its_thread(
    api: httpx.Client,
    db: Any,
    rules: Callable[..., Any],
    threads: dict[str, list[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Answers to one batch of webhooks follow its job as one job, set-wise: one claim,
    one read of the decisions, one transaction that stores them, one that records
    Twilio's answers (an answer that needs a model goes to the model threads)."""
    from relaydesk.automation import pipeline
    from relaydesk.automation.models import AutomationRun
    from relaydesk.messaging import delivery

    batches: list[tuple[int, list[int]]] = []
    run_many = pipeline.run_many

    def spied(run_ids: list[int], **kwargs: Any) -> Any:
        batches.append((threading.get_ident(), list(run_ids)))
        return run_many(run_ids, **kwargs)

    monkeypatch.setattr(pipeline, "run_many", spied)
    recorded: list[list[int]] = []
    record_sent = delivery.record_sent

    def spied_record(items: list[Any]) -> None:
        recorded.append([item.message_id for item in items])
        record_sent(items)

    monkeypatch.setattr(delivery, "record_sent", spied_record)
    rules()
    auto_reply(api)
    numbers = [f"+4860020040{i}" for i in range(4)]
    assert len(store_batch(numbers)) == 4
    for number in numbers:
        wait_for(lambda number=number: len(answers(db, number)) == 1, what="an answer each")
        wait_for(lambda number=number: answers(db, number)[0].sid, what="handed to Twilio")
    runs = set(db.scalars(select(AutomationRun.id).where(AutomationRun.participant.in_(numbers))))
    replies = set(
        db.scalars(select(AutomationRun.reply_message_id).where(AutomationRun.id.in_(runs)))
    )
    assert len(runs) == len(replies) == 4
    # (Spies see any work of the process; an earlier test's may still be finishing.)
    [(thread, run_ids)] = [batch for batch in batches if runs & set(batch[1])]
    assert set(run_ids) == runs  # one job for the four answers
    # The four runs created in the webhooks' transaction, by one handler call.
    assert len(threads["inbound"]) == 4 and len(set(threads["inbound"])) == 1
    assert thread not in threads["inbound"]
    assert threads["queued"] == []  # no job of their own
    tokens = db.scalars(select(AutomationRun.claim_token).where(AutomationRun.id.in_(runs)))
    assert len(set(tokens)) == 1  # claimed together
    # Twilio's four answers recorded in one transaction.
    assert [set(items) for items in recorded if replies & set(items)] == [replies]


def test_a_run_of_a_batch_that_cannot_be_decided_waits_for_the_sweep_alone(
    api: httpx.Client,
    db: Any,
    rules: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from relaydesk.automation import pipeline
    from relaydesk.automation import tasks as automation_tasks
    from relaydesk.automation.models import AutomationRun
    from relaydesk.core.db import session_scope, utcnow

    rules()
    auto_reply(api)
    numbers = [f"+4860020050{i}" for i in range(3)]
    real = pipeline.decide

    def decide(session: Any, run_id: int) -> Any:
        participant = session.scalar(
            select(AutomationRun.participant).where(AutomationRun.id == run_id)
        )
        if participant == numbers[1]:
            raise OSError("disk")
        return real(session, run_id)

    monkeypatch.setattr(pipeline, "decide", decide)
    with caplog.at_level(logging.ERROR, logger="relaydesk.automation.pipeline"):
        store_batch(numbers)
        for other in (numbers[0], numbers[2]):
            wait_for(lambda other=other: len(answers(db, other)) == 1, what="the others")
    assert "could not be decided" in caplog.text
    stuck = db.scalars(select(AutomationRun).where(AutomationRun.participant == numbers[1])).one()
    assert stuck.state == RunState.WORKING  # still claimed: no answer, nothing lost
    assert answers(db, numbers[1]) == []
    monkeypatch.setattr(pipeline, "decide", real)
    with session_scope() as session:  # its lease ran out
        session.execute(
            update(AutomationRun)
            .where(AutomationRun.id == stuck.id)
            .values(lease_until=utcnow() - timedelta(seconds=1))
        )
    automation_tasks.sweep()
    wait_for(lambda: len(answers(db, numbers[1])) == 1, what="the sweep's answer")
    for number in numbers:
        assert len(answers(db, number)) == 1
