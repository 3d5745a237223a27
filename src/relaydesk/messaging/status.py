"""Message status order: statuses only move forward, whatever order callbacks arrive in."""

from __future__ import annotations

# Internal states before Twilio has the message, then Twilio's own statuses.
PENDING = "pending"
# Waiting in relaydesk for its send time (ranked like Twilio's own "scheduled"); when the
# time comes the delivery claims it and it is an ordinary pending message again.
SCHEDULED = "scheduled"
RANK: dict[str, int] = {
    PENDING: 0,
    "accepted": 1,
    SCHEDULED: 1,
    "queued": 2,
    "sending": 3,
    "sent": 4,
    "delivered": 5,
    "undelivered": 5,
    "failed": 5,
    "read": 6,
}
# Nothing follows these (a delivered WhatsApp message may still be read; we do not wait).
FINAL = frozenset({"delivered", "undelivered", "failed", "read", "canceled"})
CANCELABLE_FROM = frozenset({"scheduled", "queued", "accepted"})
INBOUND_STATUSES = frozenset({"receiving", "received"})
KNOWN = frozenset(RANK) | {"canceled"} | INBOUND_STATUSES


def can_move(current: str, new: str) -> bool:
    """True when a message in `current` may take status `new`."""
    if new == "canceled":
        return current in CANCELABLE_FROM
    if current == "canceled" or new not in RANK:
        return False
    if current not in RANK:
        return False
    # A failed or undelivered message that the recipient later reads did arrive.
    return RANK[new] > RANK[current]
