"""Send now and tell a person what Twilio answered (the API and the panel share this)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from relaydesk.db import session_scope
from relaydesk.messaging import delivery, queries, service
from relaydesk.messaging.models import Message


@dataclass(frozen=True)
class Sent:
    """The stored message as the API shows it, and how the first attempt went."""

    message: dict[str, Any]
    outcome: delivery.Outcome


def send_now(session: Session, request: service.SendRequest) -> Sent:
    """Store the message, commit, and make the first delivery attempt right away.

    A message with `send_at` is only stored (outcome "scheduled"); a delayed job sends it.
    """
    message = service.send(session, request, deliver_inline=True)
    session.commit()
    if request.send_at is not None:
        return Sent(queries.message_dict(message), delivery.Outcome("scheduled"))
    outcome = delivery.deliver(message.id)
    with session_scope(write=False) as fresh:
        stored = fresh.get(Message, message.id)
        assert stored is not None
        return Sent(queries.message_dict(stored), outcome)
