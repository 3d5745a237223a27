"""The process's SQLite write gate: one writer at a time, the webhook writer first."""

from __future__ import annotations

import threading

from relaydesk.core.db import _WriteGate
from tests.conftest import wait_for


def test_a_writer_going_ahead_takes_the_gate_before_those_that_waited_longer() -> None:
    gate = _WriteGate()
    assert gate.take("holder", timeout=1)
    order: list[str] = []

    def writer(name: str, ahead: bool) -> None:
        assert gate.take(name, timeout=30, ahead=ahead)
        order.append(name)
        gate.give_back(name)

    threads = [threading.Thread(target=writer, args=("answer-1", False))]
    threads[0].start()
    wait_for(lambda: gate.waiting == 1, what="the first writer waiting")
    threads.append(threading.Thread(target=writer, args=("webhooks", True)))
    threads[1].start()
    wait_for(lambda: gate.waiting == 2 and gate.ahead == 1, what="both waiting")
    gate.give_back("holder")
    for thread in threads:
        thread.join(timeout=30)
    assert order == ["webhooks", "answer-1"]
    assert (gate.waiting, gate.ahead, gate.held, gate.holders) == (0, 0, False, set())


def test_a_wait_that_runs_out_leaves_the_gate_as_it_was() -> None:
    gate = _WriteGate()
    assert gate.take("holder", timeout=1)
    assert not gate.take("late", timeout=0)  # held: SQLite's own lock alone then
    assert not gate.take("late", timeout=0, ahead=True)
    gate.give_back("late")  # a writer that never held it opens nothing
    assert gate.held and gate.holders == {id("holder")}
    gate.give_back("holder")
    assert gate.take("next", timeout=0)
