"""An automatic answer follows its webhook's job in one worker thread (no queue hops).

The webhook's follow-up job decides and stores the answer and hands it to Twilio in the
thread that took it: the jobs that follow do not go through the queue, where under load
each hop waited for CPU. The guarantees stay those of the queue: a follower that fails
is logged and the sweeps recover its work; of a batch of webhooks, one answer follows
in the thread and the others go to the queue, so that other threads take them at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from relaydesk.automation.models import RunState
from relaydesk.core import tasks
from relaydesk.messaging.models import Message
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

    # The automation's inbound handler, called by the webhook's follow-up job.
    monkeypatch.setattr(pipeline, "queue_for", spy("inbound", pipeline.queue_for))
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


def test_the_answer_is_decided_and_sent_in_the_webhook_jobs_thread(
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
    assert len(threads["inbound"]) == 1
    assert threads["run"] == threads["inbound"]
    assert threads["deliver"] == threads["inbound"]
    assert threads["queued"] == []  # neither step went through the queue


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

    rules()
    auto_reply(api)
    real = pipeline.run
    monkeypatch.setattr(pipeline, "run", lambda run_id: (_ for _ in ()).throw(OSError("disk")))
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


def test_of_a_batch_one_answer_follows_and_the_others_are_queued(
    api: httpx.Client,
    db: Any,
    rules: Callable[..., Any],
    threads: dict[str, list[Any]],
) -> None:
    """Answers to one batch of webhooks are not made one after another in one thread."""
    from relaydesk.core.db import session_scope
    from relaydesk.messaging import ingest

    rules()
    auto_reply(api)
    numbers = [f"+4860020040{i}" for i in range(4)]
    with session_scope() as session:
        ids = ingest.store_inbound(
            session,
            [
                ingest.read_inbound(
                    {
                        "MessageSid": f"SMbatch{i:030d}",
                        "AccountSid": "AC" + "0" * 32,
                        "From": number,
                        "To": "+48221234567",
                        "Body": "Dzień dobry",
                        "NumMedia": "0",
                    }
                )
                for i, number in enumerate(numbers)
            ],
        )
    assert len(ids) == 4
    for number in numbers:
        wait_for(lambda number=number: len(answers(db, number)) == 1, what="an answer each")
    assert len(set(threads["inbound"])) == 1  # one job handled the batch
    assert threads["inbound"][0] in threads["run"]  # the first answer followed it
    assert len(threads["run"]) == 4
    # Three answers went to the queue (for any free thread); every delivery followed.
    assert threads["queued"] == ["automation.run"] * 3
    assert sorted(threads["deliver"]) == sorted(threads["run"])
