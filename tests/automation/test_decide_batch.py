"""A batch of runs is decided from one set-wise read, exactly as each run alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select

from relaydesk.automation.models import AutomationRun
from relaydesk.messaging.models import Message, MessageStatus
from tests.automation.conftest import OUR_NUMBER, finished, run_of
from tests.automation.test_pipeline import auto_reply
from tests.conftest import wait_for

Inbound = Callable[..., str]
THANKS = "Dziękujemy, odpiszemy wkrótce."


def decisions(run_ids: list[int], *, together: bool) -> dict[int, Any]:
    from relaydesk.automation import policy
    from relaydesk.core.db import session_scope

    if together:
        with session_scope(write=False) as session:
            policy.read_batch(session, run_ids)
            return {run_id: policy.decide(session, run_id) for run_id in run_ids}
    alone = {}
    for run_id in run_ids:
        with session_scope(write=False) as session:
            alone[run_id] = policy.decide(session, run_id)
    return alone


def pending(db: Any, sid: str) -> int:
    run = wait_for(lambda: run_of(db, sid), what=f"the run of {sid}")
    assert run.state == "pending"
    return int(run.id)


def test_a_batch_is_decided_as_each_run_alone(
    api: httpx.Client, db: Any, inbound: Inbound, rules: Callable[..., Any]
) -> None:
    from relaydesk.core.db import session_scope, utcnow

    rules(loop_guard_per_hour=3)
    auto_reply(api, THANKS)
    # History, answered at once: an echo to come, and a customer at the hourly cap.
    finished(db, inbound("+48600300001", "Dzień dobry"))
    for text in ("Pierwsze pytanie", "Drugie pytanie", "Trzecie pytanie"):
        finished(db, inbound("+48600300002", text))
    long_text = "Proszę o fakturę za zamówienie numer dwa"
    busy = "+48600300005"
    for _ in range(2):
        finished(db, inbound(busy, long_text))
    rules(debounce_seconds=60, loop_guard_per_hour=3)  # from here on the runs wait
    expected: dict[str, str] = {}
    sids: dict[str, str] = {}
    sids["echo"] = inbound("+48600300001", THANKS)
    expected["echo"] = "loop_guard"
    sids["capped"] = inbound("+48600300002", "Czwarte pytanie")
    expected["capped"] = "loop_guard"
    sids["first"] = inbound("+48600300003", "Mam pytanie")
    expected["first"] = "merged"
    sids["second"] = inbound("+48600300003", "o godziny otwarcia")
    expected["second"] = "auto_reply"

    # A busy conversation: the same long text a third time (answered the same way
    # twice above), then more of our messages than the batch reads of one conversation
    # before the batch's last message (another customer's). The third long text is a
    # loop only if its own earlier lines are read, past the batch's cut.
    sids["repeated"] = inbound(busy, long_text)
    expected["repeated"] = "loop_guard"
    conversation_id = db.scalar(select(Message.conversation_id).where(Message.participant == busy))
    with session_scope() as session:
        for i in range(100):
            session.add(
                Message(
                    direction="outbound",
                    channel="sms",
                    from_addr=OUR_NUMBER,
                    to_addr=busy,
                    participant=busy,
                    conversation_id=conversation_id,
                    body=f"Odpowiedź konsultanta {i}",
                    status=MessageStatus.DELIVERED,
                    source="operator",
                    created_at=utcnow(),
                )
            )
    sids["plain"] = inbound("+48600300004", "Czy jesteście otwarci?")
    expected["plain"] = "auto_reply"

    run_ids = {name: pending(db, sid) for name, sid in sids.items()}
    alone = decisions(list(run_ids.values()), together=False)
    together = decisions(list(run_ids.values()), together=True)
    assert together == alone
    outcomes = {name: str(together[run_id].outcome) for name, run_id in run_ids.items()}
    assert outcomes == expected, {n: together[r].detail for n, r in run_ids.items()}
    assert "answered the same way" in (together[run_ids["repeated"]].detail or "")
    # Nothing was claimed or answered by deciding.
    states = db.scalars(select(AutomationRun.state).where(AutomationRun.id.in_(run_ids.values())))
    assert set(states) == {"pending"}
