"""A run claimed by a process that died is taken over at the next sweep, not after its lease."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from relaydesk.automation.models import AutomationRun, RunState
from relaydesk.core import owners
from relaydesk.core.db import utcnow
from tests.automation.conftest import answers, finished, run_of
from tests.automation.test_pipeline import auto_reply
from tests.conftest import wait_for


def dead_owner() -> str:
    """The claim owner of a process that ran on this machine and is gone."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    owner = owners._owner(process.pid)
    process.kill()
    process.wait()
    assert owners.is_dead(owner)
    return owner


def claimed_mid_answer(db: Any, sid: str, owner: str) -> None:
    """The run as a process leaves it when it is killed while answering."""
    db.execute(
        update(AutomationRun)
        .where(AutomationRun.id == run_of(db, sid).id)  # type: ignore[union-attr]
        .values(
            state=RunState.WORKING,
            outcome=None,
            finished_at=None,
            claim_token="killed0000000000",
            claimed_by=owner,
            lease_until=utcnow() + timedelta(minutes=3),
        )
    )
    db.commit()


def stored_unanswered(
    api: httpx.Client,
    db: Any,
    inbound: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    number: str,
) -> str:
    """An inbound message whose run was made but never ran (its job held back here)."""
    from relaydesk.automation import pipeline

    auto_reply(api)
    held_back: list[int] = []
    with monkeypatch.context() as held:
        held.setattr(pipeline, "run", lambda run_id, **_: held_back.append(run_id))
        sid = inbound(number, "Czy jest ktoś?")
        wait_for(lambda: run_of(db, sid), what="the run")
        wait_for(lambda: run_of(db, sid).id in held_back, what="its job held back")
    return sid


def test_the_run_of_a_killed_process_is_answered_at_the_next_sweep(
    api: httpx.Client,
    db: Any,
    inbound: Callable[..., str],
    rules: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from relaydesk.automation import tasks

    rules()
    sid = stored_unanswered(api, db, inbound, monkeypatch, "+48600200501")
    claimed_mid_answer(db, sid, dead_owner())
    tasks.sweep()
    run = finished(db, sid)
    assert run.outcome == "auto_reply"
    assert len(answers(db, "+48600200501")) == 1
    assert run.attempts == 1  # the held-back job never claimed it


def test_the_run_of_a_live_process_keeps_its_lease(
    api: httpx.Client,
    db: Any,
    inbound: Callable[..., str],
    rules: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slow process (here: this one) is not robbed of its run before the lease ends."""
    from relaydesk.automation import tasks

    rules()
    sid = stored_unanswered(api, db, inbound, monkeypatch, "+48600200502")
    claimed_mid_answer(db, sid, owners.me())
    tasks.sweep()
    db.expire_all()
    run = run_of(db, sid)
    assert run is not None and run.state == RunState.WORKING
    assert run.claimed_by == owners.me()
    assert answers(db, "+48600200502") == []
