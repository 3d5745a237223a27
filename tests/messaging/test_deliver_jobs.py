"""A queued delivery job hands its Twilio call to the process's call threads.

The job (`messaging.deliver`: a scheduled send, a reminder, a retry) claims the message
in its worker thread and returns; the call and its record happen in a call thread, at
most SEND_CONCURRENCY of them at once, counted as the job still running meanwhile.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from relaydesk.channels.sandbox.runtime import get_emulator
from relaydesk.core.tasks import running_jobs
from relaydesk.messaging import delivery
from relaydesk.messaging.models import Message
from tests.conftest import wait_for


def due_messages(api: httpx.Client, db: Any, count: int) -> list[int]:
    """`count` scheduled messages whose time has come (their own delayed jobs are a day
    away): what a scheduled send's job finds when it runs."""
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    ids = []
    for i in range(count):
        made = api.post(
            "/api/send-message",
            json={"to": f"+4860030030{i}", "body": f"Przypomnienie {i}", "send_at": later},
        )
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    db.execute(
        update(Message)
        .where(Message.id.in_(ids))
        .values(scheduled_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    db.commit()
    return ids


def row(db: Any, message_id: int) -> Message:
    db.expire_all()
    found = db.scalar(select(Message).where(Message.id == message_id))
    assert found is not None
    return found


class HeldTwilio:
    """Twilio's replies held until released; counts the calls under way."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.release = threading.Event()
        self.entered: list[int] = []
        self.threads: set[int] = set()
        real = delivery.submit

        def submit(gateway: Any, snapshot: Any) -> Any:
            self.entered.append(snapshot.id)
            self.threads.add(threading.get_ident())
            assert self.release.wait(30), "the test never released Twilio's replies"
            return real(gateway, snapshot)

        monkeypatch.setattr(delivery, "submit", submit)


def in_thread(work: Any) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_a_delivery_job_returns_while_twilio_holds_its_call(
    api: httpx.Client, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three jobs return while Twilio holds all three calls (made in other threads),
    each listed as running until its call is recorded; then every message carries the
    SID Twilio gave it."""
    ids = due_messages(api, db, 3)
    twilio = HeldTwilio(monkeypatch)
    jobs = in_thread(lambda: [delivery.deliver_soon(message_id) for message_id in ids])
    jobs.join(timeout=20)
    try:
        assert not jobs.is_alive(), "a job waited for Twilio's reply"
        wait_for(lambda: len(twilio.entered) == 3, what="the three calls under way")
        assert jobs.ident not in twilio.threads
        assert running_jobs().count("messaging.deliver") == 3
        assert [row(db, i).status for i in ids] == ["pending"] * 3
        assert [row(db, i).submit_state for i in ids] == ["in_flight"] * 3
    finally:
        twilio.release.set()
    wait_for(lambda: all(row(db, i).sid for i in ids), what="the SIDs recorded")
    wait_for(lambda: "messaging.deliver" not in running_jobs(), what="the jobs done")
    emulator = get_emulator()
    for message_id in ids:
        message = row(db, message_id)
        [at_twilio] = emulator.store.for_number(message.to_addr)
        assert (message.sid, message.attempts) == (at_twilio.sid, 1)


def test_past_the_limit_a_job_waits_for_a_call_to_end_before_it_claims(
    api: httpx.Client, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With two calls allowed in flight, the third job claims nothing until one of the
    two is back."""
    ids = due_messages(api, db, 3)
    twilio = HeldTwilio(monkeypatch)
    slots = threading.Semaphore(2)
    monkeypatch.setattr(delivery, "_job_slots", lambda: slots)
    try:
        for message_id in ids[:2]:
            delivery.deliver_soon(message_id)
        wait_for(lambda: len(twilio.entered) == 2, what="two calls under way")
        third = in_thread(lambda: delivery.deliver_soon(ids[2]))
        third.join(timeout=0.5)
        assert third.is_alive()
        assert row(db, ids[2]).attempts == 0  # not claimed
    finally:
        twilio.release.set()
    third.join(timeout=20)
    assert not third.is_alive()
    wait_for(lambda: all(row(db, i).sid for i in ids), what="the SIDs recorded")
    assert sorted(twilio.entered) == sorted(ids)


@pytest.mark.parametrize("together", [False, True], ids=["one", "a batch"])
def test_a_call_that_waited_past_half_its_lease_is_left_to_the_sweep(
    api: httpx.Client, db: Any, monkeypatch: pytest.MonkeyPatch, together: bool
) -> None:
    """A claimed message whose call waited (for a call thread) past half the claim's
    lease is not sent by that call: once the lease runs out another attempt may take it
    over. The claim stays for the sweep, whose attempt asks Twilio first. Alone (a job's
    call) or in a batch (a flood's answers), the others of the batch go."""
    ids = due_messages(api, db, 2 if together else 1)
    calls: list[int] = []
    real = delivery.submit

    def submit(gateway: Any, snapshot: Any) -> Any:
        calls.append(snapshot.id)
        return real(gateway, snapshot)

    monkeypatch.setattr(delivery, "submit", submit)
    lease = delivery.claim_lease().total_seconds()
    snapshots = []
    for message_id in ids:
        taken = delivery._take(message_id)
        assert not isinstance(taken, delivery.Outcome)
        snapshots.append(taken[0])
    snapshots[0] = dataclasses.replace(snapshots[0], taken=time.monotonic() - lease / 2 - 1)
    if together:
        outcomes = delivery.deliver_claimed_many(snapshots)
    else:
        outcomes = [delivery.deliver_claimed(snapshots[0])]
    assert [o.state for o in outcomes] == ["skipped", "submitted"][: len(ids)]
    assert calls == ids[1:]
    late = row(db, ids[0])
    assert (late.status, late.sid, late.submit_state) == ("pending", None, "in_flight")
    assert late.attempts == 1 and late.submit_started_at is not None
    assert get_emulator().store.for_number(late.to_addr) == []
    if together:
        assert row(db, ids[1]).sid is not None
