"""Live traffic first: answers and operator sends never wait behind bulk work.

Every bulk worker thread is held by a campaign dispatcher that does not return (and
more dispatches wait in the bulk queue); a customer's message is still answered and an
operator's message still reaches Twilio, as the emulator's own store shows. On a single
queue (before the split) the held jobs took every worker thread and both waited.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from relaydesk.messaging.models import Message
from tests.automation.conftest import answers, finished
from tests.conftest import wait_for
from tests.messaging.test_send_api import emulator_messages


def test_answers_and_operator_sends_pass_bulk_work_that_holds_every_bulk_thread(
    api: httpx.Client,
    db: Any,
    inbound: Callable[..., str],
    rules: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from relaydesk.campaigns import dispatch
    from relaydesk.core import tasks
    from relaydesk.core.config import get_settings

    release = threading.Event()
    started: list[int] = []
    finished_jobs: list[int] = []
    lock = threading.Lock()

    def held(batch_id: int) -> None:
        with lock:
            started.append(batch_id)
        release.wait(60)
        with lock:
            finished_jobs.append(batch_id)

    monkeypatch.setattr(dispatch, "dispatch", held)
    bulk_threads = get_settings().bulk_worker_threads
    # More than every worker thread of both queues together: on one shared queue the
    # live jobs would have no thread left.
    held_jobs = bulk_threads + get_settings().worker_threads + 2
    try:
        for fake_batch in range(1, held_jobs + 1):
            tasks.enqueue("campaigns.dispatch", 10_000_000 + fake_batch)
        wait_for(lambda: len(started) == bulk_threads, what="every bulk thread to be held")

        rules()
        reply = api.put("/api/auto-reply", json={"enabled": True, "message": "Jesteśmy!"})
        assert reply.status_code == 200, reply.text
        sid = inbound("+48600300401", "Halo, czy ktoś jest?")
        assert finished(db, sid).outcome == "auto_reply"
        [answer] = answers(db, "+48600300401")
        wait_for(
            lambda: [m.body for m in emulator_messages("+48600300401")] == ["Jesteśmy!"],
            what="the automatic answer at the emulator while bulk work holds its threads",
        )

        sent = api.post("/api/send-message", json={"to": "+48600300402", "body": "Od operatora"})
        assert sent.status_code == 201, sent.text
        wait_for(
            lambda: [m.body for m in emulator_messages("+48600300402")] == ["Od operatora"],
            what="the operator's message at the emulator while bulk work holds its threads",
        )
        assert db.scalar(select(Message.sid).where(Message.id == answer.id))
        # The bulk work was only held, never dropped or run beside its limit.
        assert len(started) == bulk_threads and not finished_jobs
    finally:
        release.set()
        api.put("/api/auto-reply", json={"enabled": False, "message": "Jesteśmy!"})
    wait_for(lambda: len(finished_jobs) == held_jobs, what="every held bulk job to run")
    assert sorted(started) == [10_000_000 + n for n in range(1, held_jobs + 1)]
