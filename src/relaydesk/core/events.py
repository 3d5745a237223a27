"""Events for outgoing webhooks: written in the transaction of the change they report.

An admin registers endpoints (relaydesk.webhooks_out) that subscribe to event types.
The code that makes a change (messaging's ingest, a state change, an opt-out, a
campaign finishing) calls `emit` in its own transaction: one delivery row per event and
subscribed endpoint goes into `webhook_deliveries` (an outbox), so a rollback emits
nothing and a crash after the commit loses nothing. A worker job sends the rows later
(relaydesk.webhooks_out.sender); nothing here makes a network call, so the webhook path
and the send path never wait for an endpoint.

It lives in the core because the lowest domains (contacts, messaging) emit: the
endpoints and the outbox are core tables, and which endpoints want which type is kept
in a short cache (`subscribers`) so a type nobody subscribes to costs a dictionary look-up.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, String, Text, event, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from relaydesk.core.db import Base, BigId, UTCDateTime, utcnow
from relaydesk.core.settings_store import Cached, mark_changed
from relaydesk.core.tasks import enqueue

# The events an endpoint may subscribe to (webhook.test is sent on request only).
EVENT_TYPES = (
    "message.received",
    "message.sent",
    "message.status",
    "conversation.status",
    "conversation.assigned",
    "contact.opted_out",
    "contact.opted_in",
    "campaign.finished",
    "voicebot.call_synced",
)
TEST_EVENT = "webhook.test"
DELIVER_JOB = "webhooks_out.deliver"
log = logging.getLogger(__name__)

# What a delivery row goes through: pending (waiting, being sent, or waiting for a retry),
# then delivered, or failed (gave up: a 4xx, or still failing 24 hours after the event).
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


class WebhookEndpoint(Base):
    """A receiver an admin registered: where events go and which types it wants."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="")
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The signing secret ("whsec_..."), encrypted with SECRET_KEY; never returned.
    secret: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Set at the first failure after a success; a delivery that gives up while it is more
    # than 24 hours old disables the endpoint (`disabled_reason` says so in the panel).
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event for one endpoint: the signed body, where it stands, when to try next.

    The body is kept as sent (a replay sends the same bytes with the same `event_id`,
    the `webhook-id` receivers dedupe by). `key` orders delivery: an endpoint gets a
    key's (a customer's) events one after the other, never a later one first.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_order", "endpoint_id", "state", "key", "id"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No foreign key on purpose: another process's cache may still list an endpoint that
    # was just deleted, and its rows must not fail the ingest transaction that writes
    # them. Rows of a missing endpoint are never sent and the sweep deletes them.
    endpoint_id: Mapped[int] = mapped_column(BigId)
    event_id: Mapped[str] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(10), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A worker holds the row until then; after a crash another takes it (at-least-once).
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def _load_subscribers(session: Session) -> dict[str, tuple[int, ...]]:
    wanted: dict[str, list[int]] = {}
    rows = session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.events).where(WebhookEndpoint.enabled)
    )
    for endpoint_id, types in rows:
        for kind in types or ():
            wanted.setdefault(str(kind), []).append(endpoint_id)
    return {kind: tuple(ids) for kind, ids in wanted.items()}


# A change to the endpoints in this process drops it at once (`endpoints_changed`);
# another process's change is seen within these seconds.
_subscribers: Cached[dict[str, tuple[int, ...]]] = Cached(_load_subscribers, 5.0)


def subscribers(event_type: str, session: Session | None = None) -> tuple[int, ...]:
    """The enabled endpoints that want `event_type` (cached; empty for most installs)."""
    return _subscribers.get(session).get(event_type, ())


def wanted(event_type: str, session: Session | None = None) -> bool:
    """Whether any enabled endpoint subscribes to `event_type`: build the data only then."""
    return bool(subscribers(event_type, session))


def forget_subscribers() -> None:
    """Read the subscriptions again at the next event (tests that empty the tables)."""
    _subscribers.forget()


def endpoints_changed(session: Session) -> None:
    """An endpoint was added, changed or removed: forget the cache once this commits."""
    mark_changed(session)


def new_event_id() -> str:
    """A Standard Webhooks message id (`webhook-id`): unique, URL-safe."""
    return "msg_" + secrets.token_urlsafe(18)


def body_of(event_id: str, event_type: str, at: datetime, data: Any) -> str:
    """The JSON body every endpoint gets: id, type, timestamp and the object."""
    return json.dumps(
        {"id": event_id, "type": event_type, "timestamp": at.isoformat(), "data": data},
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )


def emit(
    session: Session,
    event_type: str,
    items: Iterable[tuple[str, Any]],
    *,
    endpoints: Sequence[int] | None = None,
) -> int:
    """Queue events of one type for their subscribers, in the caller's transaction.

    `items` are (key, data) pairs in the order they happened: `key` is what delivery
    keeps in order (a customer's number), `data` the object as the API returns it (JSON
    ready). One multi-row insert for the whole batch; the job runs after the commit.
    Returns the number of delivery rows written.
    """
    targets = tuple(endpoints) if endpoints is not None else subscribers(event_type, session)
    if not targets:
        return 0
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for key, data in items:
        event_id = new_event_id()
        body = body_of(event_id, event_type, now, data)
        for endpoint_id in targets:
            rows.append(
                {
                    "endpoint_id": endpoint_id,
                    "event_id": event_id,
                    "type": event_type,
                    "key": key[:100],
                    "body": body,
                    "state": PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
    if not rows:
        return 0
    session.connection().execute(insert(WebhookDelivery), rows)
    kick(session)
    return len(rows)


def kick(session: Session) -> None:
    """Have the deliveries sent once this transaction commits (once per transaction).

    When this process's sender is running it is asked to look once more; otherwise the
    delivery job is queued. At 1,000 inbound webhooks a second that spares the job
    queue a job per ingest batch.
    """
    session.info[_KICK] = True


_KICK = "relaydesk_webhooks_kick"
_local_sender: list[Callable[[], bool]] = []


def on_local_sender(wake: Callable[[], bool]) -> None:
    """Register this process's sender: `wake()` returns True when it will look again."""
    _local_sender[:] = [wake]


def _after_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint was released: wait for the real commit
    if not session.info.pop(_KICK, False):
        return
    if _local_sender and _local_sender[0]():
        return
    try:
        enqueue(DELIVER_JOB)
    except Exception:
        # The rows are committed; the minute sweep sends them.
        log.exception("could not queue %s; the sweep will send the deliveries", DELIVER_JOB)


def _after_rollback(session: Session) -> None:
    if session.get_nested_transaction() is None:
        session.info.pop(_KICK, None)


event.listen(Session, "after_commit", _after_commit)
event.listen(Session, "after_rollback", _after_rollback)
