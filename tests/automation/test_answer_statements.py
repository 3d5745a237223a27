"""An automatic answer is stored in the conversation its store transaction already
loaded: the send does not look the contact and the conversation up again (five
statements per answer, a sixth of the store's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from relaydesk.core.db import session_scope
from relaydesk.messaging import service as messaging
from relaydesk.messaging.models import Conversation
from tests.automation.conftest import answers, finished
from tests.automation.test_pipeline import auto_reply
from tests.automation.test_settings_copy import statements  # noqa: F401 (fixture)

Inbound = Callable[..., str]


def test_an_answer_joins_its_conversation_without_looking_it_up_again(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    rules: Callable[..., Any],
    statements: list[str],  # noqa: F811
) -> None:
    rules()
    auto_reply(api)
    customer = "+48600200601"
    finished(db, inbound(customer, "Dzień dobry"))
    statements.clear()
    second = inbound(customer, "Czy jesteście otwarci?")
    assert finished(db, second).outcome == "auto_reply"
    [first_answer, answer] = answers(db, customer)
    assert answer.body == "Dziękujemy, odpiszemy wkrótce."
    assert answer.conversation_id == first_answer.conversation_id is not None
    # The send's own lookups (ingest upserts the inbound message's rows differently).
    lookups = [
        s
        for s in statements
        if (
            s.startswith(("INSERT INTO contacts", "INSERT INTO conversations"))
            and "DO NOTHING" in s
        )
        or "FROM conversations WHERE conversations.contact_id IN" in s
    ]
    assert lookups == [], lookups
    assert any(s.startswith("INSERT INTO messages (direction") for s in statements)


def test_a_known_conversation_keeps_every_rule_of_a_send(db: Any, inbound: Inbound) -> None:
    """Given the rows, the send still refuses an opted-out customer and still creates a
    conversation for another sender number."""
    from sqlalchemy import select

    from relaydesk.contacts.models import Contact
    from relaydesk.core.errors import OptedOut

    customer = "+48600200602"
    inbound(customer, "Halo")
    with session_scope() as session:
        conversation = session.scalar(
            select(Conversation).where(Conversation.participant == customer)
        )
        assert conversation is not None
        contact = session.get(Contact, conversation.contact_id)
        assert contact is not None
        elsewhere = messaging.send(
            session,
            messaging.SendRequest(to=customer, body="Z innego numeru", from_="+15005550009"),
            known=(contact, conversation),
        )
        assert elsewhere.conversation_id not in (None, conversation.id)
        contact.opted_out_at = conversation.created_at
        session.flush()
        refused = messaging.send_many(
            session,
            [messaging.SendRequest(to=customer, body="Nie", from_=conversation.our_address)],
            known=[(contact, conversation)],
        )
        assert isinstance(refused[0], OptedOut)
        session.rollback()
