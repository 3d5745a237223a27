"""Answers wait for their model in threads of their own, MODEL_CONCURRENCY at once.

A model takes its time. The live worker threads used to call it themselves: with four
threads, a thousand customers writing at once were answered four at a time, and
everything else on the live queue (a HELP, another webhook's answer) waited behind them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event, func, select

from relaydesk.automation import model_calls
from relaydesk.automation.models import AutomationRun, RunState
from relaydesk.core.config import get_settings
from relaydesk.core.db import session_scope
from tests.automation.conftest import answers, finished
from tests.conftest import FrozenClock, wait_for
from tests.fakes import FakeOpenAI
from tests.fakes.openai import echo_last_user_message

Inbound = Callable[..., str]


class HeldModel:
    """The fake model's answers wait until released; counts the calls waiting."""

    def __init__(self, fake: FakeOpenAI) -> None:
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.waiting = 0
        self.most = 0
        fake.reply_with(self.reply)

    def reply(self, body: dict[str, Any]) -> str:
        with self.lock:
            self.waiting += 1
            self.most = max(self.most, self.waiting)
        try:
            self.released.wait(timeout=60)
            return echo_last_user_message(body)
        finally:
            with self.lock:
                self.waiting -= 1


@pytest.fixture
def held(openai_fake: FakeOpenAI) -> Iterator[HeldModel]:
    model = HeldModel(openai_fake)
    yield model
    model.released.set()


def claimed_runs() -> int:
    with session_scope(write=False) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(AutomationRun)
                .where(AutomationRun.state == RunState.WORKING)
            )
            or 0
        )


def test_model_calls_run_side_by_side_up_to_the_setting_and_the_rest_wait(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    ai_on: Callable[..., Any],
    held: HeldModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    allowed = get_settings().worker_threads + 2  # more than the live threads
    monkeypatch.setattr(get_settings(), "model_concurrency", allowed)
    ai_on()
    customers = [f"+4860020050{i}" for i in range(allowed + 3)]
    sids = [inbound(number, f"Pytanie od {number}") for number in customers]

    # Every run is claimed and decided; as many wait for the model as allowed, no more.
    wait_for(lambda: held.waiting == allowed, what=f"{allowed} model calls at once")
    wait_for(lambda: claimed_runs() == len(customers), what="every run claimed")
    assert held.waiting == allowed and held.most == allowed
    assert model_calls.pool().busy() == allowed

    held.released.set()
    for number, sid in zip(customers, sids, strict=True):
        assert finished(db, sid).outcome == "ai"
        [answer] = answers(db, number)
        assert answer.body.endswith(f"Pytanie od {number}")
    assert held.most == allowed


def test_a_keyword_is_answered_while_every_model_call_waits(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    ai_on: Callable[..., Any],
    held: HeldModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(get_settings(), "model_concurrency", get_settings().worker_threads)
    ai_on()
    waiting = [inbound(f"+4860020051{i}", "Dzień dobry") for i in range(6)]
    wait_for(lambda: held.waiting == get_settings().worker_threads, what="the model calls waiting")

    # The live threads are free: a HELP gets its answer while the model still holds.
    asked = inbound("+48600200520", "HELP")
    assert finished(db, asked).outcome == "keyword_reply"
    [help_text] = answers(db, "+48600200520")
    assert help_text.body == api.get("/api/automation/rules").json()["help_message"]
    assert held.waiting == get_settings().worker_threads

    held.released.set()
    for sid in waiting:
        assert finished(db, sid).outcome == "ai"


def test_a_run_taken_over_while_it_waited_is_not_asked_again(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    ai_on: Callable[..., Any],
    held: HeldModel,
    openai_fake: FakeOpenAI,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run whose lease ran out while it waited for a model thread is handed to another
    claim by the sweep; the first claim then neither calls the model nor answers."""
    from relaydesk.automation import tasks as automation_tasks

    monkeypatch.setattr(get_settings(), "model_concurrency", 1)
    ai_on()
    clock.freeze()
    first = inbound("+48600200530", "Pierwsze pytanie")
    wait_for(lambda: held.waiting == 1, what="the first model call")
    second = inbound("+48600200531", "Drugie pytanie")
    wait_for(lambda: claimed_runs() == 2, what="the second run claimed, waiting its turn")

    clock.move(timedelta(seconds=get_settings().automation_lease_seconds * 1.5))
    automation_tasks.sweep()  # both leases ran out: both runs are claimed again
    wait_for(
        lambda: (
            db.scalar(
                select(func.count())
                .select_from(AutomationRun)
                .where(AutomationRun.lease_until > clock.at)
            )
            == 2
        ),
        what="the runs claimed again",
    )
    held.released.set()
    assert finished(db, first).outcome == "ai"
    assert finished(db, second).outcome == "ai"
    assert len(answers(db, "+48600200530")) == 1
    assert len(answers(db, "+48600200531")) == 1
    wait_for(lambda: model_calls.pool().busy() == 0, what="the model threads idle")
    # The model was asked by the first claim of the first run (already waiting) and by
    # the second claim of each; the second run's first claim gave up without asking.
    asked = [r for r in openai_fake.requests if "messages" in r]
    questions = sorted(str(r["messages"][-1]["content"]) for r in asked)
    assert questions.count("Drugie pytanie") == 1, questions


def test_runs_handed_back_at_a_stop_are_answered_once_by_the_next_claim(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    ai_on: Callable[..., Any],
    held: HeldModel,
    openai_fake: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`hand_back` (what a stopping worker calls) releases every run held by the model
    threads and queues it again: the call under way stores nothing, the runs that were
    waiting are not asked by their old claim, and each customer gets one answer."""
    from relaydesk.automation import pipeline
    from relaydesk.core import tasks

    assert pipeline.hand_back in tasks._stop_hooks
    monkeypatch.setattr(get_settings(), "model_concurrency", 1)
    ai_on()
    customers = [f"+4860020054{i}" for i in range(3)]
    sids = [inbound(number, f"Pytanie {number}") for number in customers]
    wait_for(lambda: held.waiting == 1, what="the first model call")
    wait_for(lambda: len(pipeline._held) == 3, what="every run handed to the model threads")

    assert pipeline.hand_back() == 3
    held.released.set()
    for number, sid in zip(customers, sids, strict=True):
        assert finished(db, sid).outcome == "ai"
        assert len(answers(db, number)) == 1
    wait_for(lambda: model_calls.pool().busy() == 0, what="the model threads idle")
    asked = sorted(str(r["messages"][-1]["content"]) for r in openai_fake.requests)
    # The call under way when its claim was given back is made again by the next claim.
    assert len(asked) == 4 and len(set(asked)) == 3, asked


def test_the_model_threads_read_nothing_before_their_calls(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    ai_on: Callable[..., Any],
    held: HeldModel,
    openai_fake: FakeOpenAI,
) -> None:
    """A batch's conversations (and the AI's tools) are read with its decisions, in
    their transaction: a model thread calls the model at once (each used to open three
    transactions first), and the model still reads each customer's own words."""
    ai_on()
    seen: list[str] = []

    def statement(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if threading.current_thread().name.startswith("relaydesk-model"):
            seen.append(sql)

    event.listen(Engine, "before_cursor_execute", statement)
    try:
        customers = [f"+4860020053{i}" for i in range(4)]
        sids = [inbound(number, f"Czy macie {number}?") for number in customers]
        wait_for(lambda: held.waiting == len(customers), what="every model call under way")
        assert seen == []
    finally:
        event.remove(Engine, "before_cursor_execute", statement)
        held.released.set()
    for number, sid in zip(customers, sids, strict=True):
        assert finished(db, sid).outcome == "ai"
        [answer] = answers(db, number)
        assert answer.body == f"Echo: Czy macie {number}?"
    asked = sorted(r["messages"][-1]["content"] for r in openai_fake.requests)
    assert asked == sorted(f"Czy macie {number}?" for number in customers)
