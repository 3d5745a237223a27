"""A batch of status callbacks is applied set-wise: each message's moves worked out in
order, one UPDATE for all of them, and the events say exactly which moves took."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import event, select, text, update

from relaydesk.channels.sandbox.knobs import KnobsUpdate
from relaydesk.channels.sandbox.runtime import get_emulator
from relaydesk.channels.twilio.parsing import StatusRecord
from relaydesk.contacts.models import Contact
from relaydesk.core.db import get_engine, session_scope
from relaydesk.messaging import ingest
from relaydesk.messaging.models import Message, MessageEvent


def sent(api: httpx.Client, to: str) -> str:
    answer = api.post("/api/send-message", json={"to": to, "body": "Hej"})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["sid"])


def callback(sid: str, status: str, code: int | None = None) -> StatusRecord:
    return StatusRecord(sid, status, code, {"MessageSid": sid, "MessageStatus": status}, None)


@pytest.fixture
def frozen_emulator(server: Any) -> None:
    """Only the test's callbacks move the messages."""
    get_emulator().control.update(KnobsUpdate(status_delay_ms=600_000))


def test_one_statement_moves_every_message_of_a_batch_in_order(
    api: httpx.Client, db: Any, frozen_emulator: None
) -> None:
    sids = [sent(api, f"+4860010070{i}") for i in range(5)]
    gone = sent(api, "+48600100710")
    records = [callback(sid, s) for s in ("delivered", "sent", "queued") for sid in sids]
    records += [callback(gone, "sent"), callback(gone, "failed", 21610)]
    records.append(callback("SM" + "0" * 32, "delivered"))  # not ours (yet)
    seen: list[str] = []

    def spy(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        seen.append(statement)

    event.listen(get_engine(), "before_cursor_execute", spy)
    try:
        with session_scope() as session:
            applied = ingest.record_statuses(session, records)
    finally:
        event.remove(get_engine(), "before_cursor_execute", spy)

    assert applied == 5 + 2
    assert len([s for s in seen if s.startswith("UPDATE messages SET status=")]) == 1
    statuses = dict(db.execute(select(Message.sid, Message.status)).all())
    assert [statuses[sid] for sid in sids] == ["delivered"] * 5
    assert statuses[gone] == "failed"
    failed = db.scalar(select(Message).where(Message.sid == gone))
    assert failed.error_code == 21610 and failed.error_message and failed.status_check_at is None
    opted_out = db.scalar(select(Contact.opted_out_at).where(Contact.phone == "+48600100710"))
    assert opted_out is not None
    flags = db.execute(
        select(MessageEvent.sid, MessageEvent.status, MessageEvent.applied).order_by(
            MessageEvent.id
        )
    ).all()
    mine = [(sid, status, ok) for sid, status, ok in flags if sid in (*sids, gone)]
    assert [ok for _, status, ok in mine if status == "delivered"] == [True] * 5
    assert [ok for _, status, ok in mine if status in ("sent", "queued")] == [False] * 10 + [True]
    assert [ok for _, status, ok in mine if status == "failed"] == [True]


def test_a_move_another_writer_made_first_is_not_counted_as_taken(
    api: httpx.Client, db: Any, frozen_emulator: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statuses are read back: a message moved meanwhile by a writer that does not
    take the SIDs' lock keeps that writer's status, and the callback's event says it
    was not applied."""
    sid = sent(api, "+48600100720")

    with session_scope() as session:
        conn = session.connection()  # the transaction's connection, as record_statuses gets it
        original = conn.execute

        def another_writer_first(statement: Any, *args: Any, **kwargs: Any) -> Any:
            if statement is ingest._move_status:  # between the read and the update
                original(update(Message).where(Message.sid == sid).values(status="undelivered"))
            return original(statement, *args, **kwargs)

        monkeypatch.setattr(conn, "execute", another_writer_first)
        applied = ingest.record_statuses(session, [callback(sid, "delivered")])
    assert applied == 0
    assert db.scalar(select(Message.status).where(Message.sid == sid)) == "undelivered"
    [flag] = db.scalars(select(MessageEvent.applied).where(MessageEvent.sid == sid)).all()
    assert flag is False


def test_the_sids_of_a_batch_are_locked_in_one_statement() -> None:
    """PostgreSQL: every SID's advisory lock, held to the end of the transaction, taken
    with one statement (it was one per SID); SQLite has one writer and needs none."""
    sids = [f"SM{i:032x}" for i in (3, 1, 2, 1)]
    seen: list[str] = []

    def spy(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        seen.append(statement)

    engine = get_engine()
    with session_scope() as session:
        event.listen(engine, "before_cursor_execute", spy)
        try:
            ingest.lock_sids(session, sids)
        finally:
            event.remove(engine, "before_cursor_execute", spy)
        if engine.dialect.name != "postgresql":
            assert seen == []
            return
        assert len(seen) == 1
        backend = session.scalar(text("SELECT pg_backend_pid()"))
        with engine.connect() as other:
            held = other.scalar(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND pid = :pid AND granted"
                ),
                {"pid": backend},
            )
            assert held == 3
            taken = other.scalar(
                text("SELECT pg_try_advisory_xact_lock(hashtext(:sid))"), {"sid": sids[0]}
            )
            assert taken is False  # another transaction waits for this one
