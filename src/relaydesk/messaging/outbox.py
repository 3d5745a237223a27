"""Send now and tell a person what Twilio answered (the API and the panel share this)."""

from __future__ import annotations

from dataclasses import dataclass

from relaydesk.core.db import session_scope
from relaydesk.messaging import delivery, service
from relaydesk.messaging.models import Message
from relaydesk.messaging.schemas import MessageOut


@dataclass(frozen=True)
class Sent:
    """The stored message as the API shows it, and how the first attempt went."""

    message: MessageOut
    outcome: delivery.Outcome


def send_now(request: service.SendRequest) -> Sent:
    """Store the message, then make the first delivery attempt right away.

    This is a boundary of its own, like a task: the message is committed before Twilio
    is called (a crash then leaves a stored message for the sweep, never a sent one
    without a row), so the caller passes no session. A message with `send_at` is only
    stored (outcome "scheduled"); a delayed job sends it.
    """
    with session_scope() as session:
        message = service.send(session, request, deliver_inline=True)
        view = MessageOut.model_validate(message)
    if request.send_at is not None:
        return Sent(view, delivery.Outcome("scheduled"))
    outcome = delivery.deliver(message.id)
    with session_scope(write=False) as fresh:
        stored = fresh.get(Message, message.id)
        assert stored is not None
        return Sent(MessageOut.model_validate(stored), outcome)
