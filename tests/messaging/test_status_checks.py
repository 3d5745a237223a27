"""Statuses whose callbacks were lost (relaydesk was down) are asked of Twilio later.

Twilio does not retry a status callback; a message must not stay "sent" forever while
Twilio knows it was delivered. The real server and a standalone emulator: relaydesk is
killed right after sending, the emulator's callbacks find nobody, relaydesk starts again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text, update

from relaydesk.channels.twilio.gateway import make_client
from relaydesk.core.db import session_scope, utcnow
from relaydesk.messaging import reconcile
from relaydesk.messaging.delivery import get_gateway
from relaydesk.messaging.models import Message, MessageEvent
from tests.conftest import wait_for
from tests.messaging.test_send_api import set_knobs
from tests.processes import ACCOUNT_SID, Deployment, wait_until


@pytest.mark.e2e
def test_a_status_missed_while_the_server_was_down_is_fetched_from_twilio(
    tmp_path: Path,
) -> None:
    deployment = Deployment(
        tmp_path,
        standalone_sandbox=True,
        SANDBOX_STATUS_DELAY_MS="1500",
        STATUS_CHECK_AFTER_SECONDS="1,3600",
    )
    try:
        deployment.start()
        with deployment.client() as client:
            sent = client.post("/api/send-message", json={"to": "+48600100200", "body": "Hej"})
            assert sent.status_code in (200, 201, 202), sent.text
            message_id = sent.json()["id"]
            wait_until(
                lambda: client.get(f"/api/messages/{message_id}").json()["sid"],
                60,
                "Twilio's SID to be recorded",
                deployment,
            )
        deployment.kill()
        twilio = make_client(
            deployment.sandbox_base, ACCOUNT_SID, deployment.env["TWILIO_AUTH_TOKEN"]
        )
        wait_until(
            lambda: [m for m in twilio.messages.list() if m.status == "delivered"],
            60,
            "the emulator to deliver the message (its callbacks find nobody)",
            deployment,
        )
        deployment.start()
        with deployment.client() as client:
            wait_until(
                lambda: client.get(f"/api/messages/{message_id}").json()["status"] == "delivered",
                120,
                "relaydesk to learn the delivery from Twilio",
                deployment,
            )
        engine = create_engine(deployment.env["DATABASE_URL"])
        try:
            with engine.connect() as conn:
                kept = conn.execute(
                    text("SELECT status, payload FROM message_events WHERE message_id = :m"),
                    {"m": message_id},
                ).all()
        finally:
            engine.dispose()
        checked = [row for row in kept if "status check" in str(row.payload)]
        assert [row.status for row in checked] == ["delivered"], kept
    finally:
        deployment.stop()


def _sent_and_settled(api: Any, db: Any, status: str) -> Message:
    answer = api.post("/api/send-message", json={"to": "600 100 300", "body": "Kontrola"})
    assert answer.status_code == 201, answer.text
    mid = answer.json()["id"]
    wait_for(lambda: db.get(Message, mid).status == status, what=f"the message to be {status}")
    message = db.get(Message, mid)
    assert message is not None
    return message


def _pretend(message_id: int, **values: Any) -> None:
    with session_scope() as session:
        session.execute(update(Message).where(Message.id == message_id).values(**values))


def _events(db: Any, message_id: int) -> list[tuple[str, dict[str, Any]]]:
    rows = db.execute(
        select(MessageEvent.status, MessageEvent.payload)
        .where(MessageEvent.message_id == message_id)
        .order_by(MessageEvent.id)
    ).all()
    return [(row.status, row.payload) for row in rows]


def test_the_schedule_asks_after_each_step_and_then_stops() -> None:
    sent = datetime(2026, 1, 1, tzinfo=UTC)
    assert reconcile.first_check(sent) == sent + timedelta(minutes=10)
    assert reconcile.next_check(sent, sent + timedelta(minutes=10)) == sent + timedelta(hours=1)
    assert reconcile.next_check(sent, sent + timedelta(hours=2)) == sent + timedelta(hours=12)
    assert reconcile.next_check(sent, sent + timedelta(hours=13)) == sent + timedelta(hours=24)
    assert reconcile.next_check(sent, sent + timedelta(hours=24)) is None


def test_a_sent_message_gets_its_first_check_when_twilio_takes_it(api: Any, db: Any) -> None:
    set_knobs(status_delay_ms=600_000)  # held at "queued" by the emulator
    message = _sent_and_settled(api, db, "queued")
    assert message.status_check_at is not None
    assert message.status_check_at - message.updated_at == timedelta(minutes=10)


def test_a_lost_delivery_is_fetched_and_kept_as_an_event(api: Any, db: Any) -> None:
    message = _sent_and_settled(api, db, "delivered")
    past = utcnow() - timedelta(minutes=11)
    # As if the "delivered" callback had never come: still "sent" here.
    _pretend(message.id, status="sent", status_check_at=past, created_at=past)
    before = _events(db, message.id)
    assert reconcile.check_due(get_gateway()) == 1
    after = db.get(Message, message.id)
    assert after.status == "delivered"
    assert after.status_check_at is None  # final: no more questions
    new = _events(db, message.id)[len(before) :]
    assert [(status, payload["Source"]) for status, payload in new] == [
        ("delivered", "status check")
    ]


def test_an_unfinished_message_is_asked_again_at_the_next_step(api: Any, db: Any) -> None:
    set_knobs(status_delay_ms=600_000)
    message = _sent_and_settled(api, db, "queued")
    sent_at = utcnow() - timedelta(minutes=11)
    _pretend(message.id, status_check_at=sent_at, created_at=sent_at)
    assert reconcile.check_due(get_gateway()) == 0
    after = db.get(Message, message.id)
    assert after.status == "queued"
    assert after.status_check_at == sent_at + timedelta(hours=1)


def test_final_messages_and_unknown_sids_stop_being_asked(api: Any, db: Any) -> None:
    delivered = _sent_and_settled(api, db, "delivered")
    past = utcnow() - timedelta(minutes=11)
    _pretend(delivered.id, status_check_at=past)
    before = _events(db, delivered.id)
    set_knobs(status_delay_ms=600_000)
    unknown = _sent_and_settled(api, db, "queued")
    # Twilio has no such message (deleted from the account): 404, nothing more to learn.
    _pretend(unknown.id, sid="SM" + "0" * 32, status_check_at=past, created_at=past)
    reconcile.check_due(get_gateway())
    assert db.get(Message, delivered.id).status_check_at is None
    assert _events(db, delivered.id) == before  # not fetched
    assert db.get(Message, unknown.id).status_check_at is None
    assert db.get(Message, unknown.id).status == "queued"
