"""send_many: a block of requests judged one by one, stored set-wise."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from relaydesk.contacts.models import Contact
from relaydesk.core.db import session_scope, utcnow
from relaydesk.core.errors import Conflict, Invalid
from relaydesk.messaging import service
from relaydesk.messaging.models import Conversation, Message, MessageCounter


def test_each_request_gets_its_own_outcome_and_the_rest_are_stored(server: Any, db: Any) -> None:
    with session_scope() as session:
        session.add(
            Contact(
                phone="+48600300003", channel="sms", opted_out_at=utcnow(), opt_out_reason="STOP"
            )
        )
    requests = [
        service.SendRequest(to="+48600300001", body="Hello one", source="campaign"),
        service.SendRequest(to="not a number", body="Hello", source="campaign"),
        service.SendRequest(to="+48600300003", body="Hello three", source="campaign"),
        service.SendRequest(to="whatsapp:+48600300004", body="Free text", source="campaign"),
        service.SendRequest(to="0048 600 300 005", body="Zażółć gęślą jaźń", source="campaign"),
        service.SendRequest(to="+48600300006", body="", source="campaign"),
    ]
    with session_scope() as session:
        before = session.scalar(
            select(MessageCounter.count).where(MessageCounter.direction == "outbound")
        )
        outcomes = service.send_many(session, requests, safety_net=False)
    assert len(outcomes) == len(requests)
    first, bad_number, opted_out, window, polish, empty = outcomes
    assert isinstance(first, int) and isinstance(polish, int)
    assert isinstance(bad_number, Invalid) and bad_number.extra.get("field") == "to"
    assert isinstance(opted_out, Conflict) and "unsubscribed" in opted_out.message
    assert isinstance(window, Invalid) and "24-hour window" in window.message
    assert window.code == "whatsapp_window_closed"
    assert isinstance(empty, Invalid) and "empty" in empty.message

    stored = {m.id: m for m in db.scalars(select(Message).where(Message.id.in_([first, polish])))}
    assert stored[first].participant == "+48600300001" and stored[first].status == "pending"
    assert stored[polish].participant == "+48600300005"
    assert stored[polish].encoding == "UCS-2" and stored[polish].num_segments == 1
    after = db.scalar(select(MessageCounter.count).where(MessageCounter.direction == "outbound"))
    assert after == (before or 0) + 2
    conversation = db.scalar(select(Conversation).where(Conversation.participant == "+48600300005"))
    assert conversation is not None and conversation.message_count == 1
    assert conversation.last_message_id == polish and conversation.last_body == "Zażółć gęślą jaźń"


def test_claimed_messages_wait_for_their_sender_not_the_queue(server: Any, db: Any) -> None:
    lease = timedelta(seconds=120)
    with session_scope() as session:
        (mid,) = service.send_many(
            session,
            [service.SendRequest(to="+48600300011", body="Claimed", source="campaign")],
            safety_net=False,
            claimed_for=lease,
        )
    assert isinstance(mid, int)
    message = db.get(Message, mid)
    assert message.attempts == 1 and message.submit_state == "in_flight"
    assert message.submit_started_at is not None
    # The sweep leaves it alone until the claim has run out, then reconciles first.
    assert message.next_attempt_at >= message.submit_started_at + lease - timedelta(seconds=1)


def test_a_second_send_joins_the_existing_conversation(server: Any, db: Any) -> None:
    with session_scope() as session:
        service.send(session, service.SendRequest(to="+48600300021", body="First", source="api"))
    with session_scope() as session:
        service.send_many(
            session,
            [service.SendRequest(to="+48600300021", body="Second", source="campaign")],
            safety_net=False,
        )
    conversations = list(
        db.scalars(select(Conversation).where(Conversation.participant == "+48600300021"))
    )
    assert len(conversations) == 1
    assert conversations[0].message_count == 2 and conversations[0].last_body == "Second"
