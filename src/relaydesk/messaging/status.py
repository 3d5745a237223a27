"""Message status order: statuses only move forward, whatever order callbacks arrive in."""

from __future__ import annotations

from relaydesk.messaging.models import MessageStatus as S

# relaydesk's own states come before Twilio has the message; SCHEDULED (waiting in
# relaydesk for its send time) ranks like Twilio's own "scheduled": when the time comes
# the delivery claims it and it is an ordinary pending message again.
RANK: dict[S, int] = {
    S.PENDING: 0,
    S.ACCEPTED: 1,
    S.SCHEDULED: 1,
    S.QUEUED: 2,
    S.SENDING: 3,
    S.SENT: 4,
    S.DELIVERED: 5,
    S.UNDELIVERED: 5,
    S.FAILED: 5,
    S.READ: 6,
}
# Nothing follows these (a delivered WhatsApp message may still be read; we do not wait).
FINAL = frozenset({S.DELIVERED, S.UNDELIVERED, S.FAILED, S.READ, S.CANCELED})
CANCELABLE_FROM = frozenset({S.SCHEDULED, S.QUEUED, S.ACCEPTED})
INBOUND_STATUSES = frozenset({S.RECEIVING, S.RECEIVED})
KNOWN = frozenset(S)


def can_move(current: str, new: str) -> bool:
    """True when a message in `current` may take status `new` (Twilio's word, any string)."""
    if new == S.CANCELED:
        return current in CANCELABLE_FROM
    if current == S.CANCELED or new not in RANK:
        return False
    if current not in RANK:
        return False
    # A failed or undelivered message that the recipient later reads did arrive.
    return RANK[S(new)] > RANK[S(current)]
