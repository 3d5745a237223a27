"""Endpoints: register, change, remove; replays and test events; the delivery history.

The secret is write-only: made here (or given), shown once in the answer that creates
or rotates it, kept encrypted, never returned or logged afterwards. A URL is checked
against the network guard when it is saved and again at every delivery (sender).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete as sa_delete
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from relaydesk.core import audit, events
from relaydesk.core.config import get_settings
from relaydesk.core.crypto import encrypt
from relaydesk.core.db import utcnow
from relaydesk.core.errors import Invalid, NotFound
from relaydesk.core.i18n import N_
from relaydesk.core.netguard import BlockedAddress, check_public_url
from relaydesk.core.pagination import cursor_id, encode_cursor
from relaydesk.webhooks_out import signing
from relaydesk.webhooks_out.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

SETTING = "WEBHOOKS_ALLOW_PRIVATE_NETWORKS"
MAX_ENDPOINTS = 20
MAX_URL = 2000
PAGE = 50


def check_url(url: str) -> None:
    """Refuse (Invalid) a URL that is not http(s) or leads into the server's own network."""
    allowed = get_settings().webhooks_allow_private_networks
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise Invalid(N_("A URL cannot hold spaces or control characters"), params={}, field="url")
    try:
        if allowed:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise BlockedAddress(N_("'%(url)s' is not an http(s) address"), params={"url": url})
        else:
            check_public_url(url, setting=SETTING)
    except BlockedAddress as exc:
        raise Invalid(exc.template or str(exc), params=exc.params, field="url") from None
    except ValueError:
        raise Invalid(N_("'%(url)s' is not an http(s) address"), params={"url": url}) from None


def _check_events(types: Sequence[str]) -> list[str]:
    unknown = sorted(set(types) - set(events.EVENT_TYPES))
    if unknown:
        raise Invalid(
            N_("Unknown event type(s): %(types)s"),
            params={"types": ", ".join(unknown)},
            field="events",
        )
    if not types:
        raise Invalid(N_("Choose at least one event type"), params={}, field="events")
    return [t for t in events.EVENT_TYPES if t in set(types)]  # a stable order


def _check_secret(secret: str | None) -> str:
    if secret is None:
        return signing.new_secret()
    if signing.key_of(secret) is None:
        raise Invalid(
            N_(
                "A secret is whsec_ followed by the base64 of 24 to 64 random bytes; "
                "leave it out to have one made"
            ),
            params={},
            field="secret",
        )
    return secret


@dataclass(frozen=True)
class Created:
    """A new endpoint and its secret, which is shown this once."""

    endpoint: WebhookEndpoint
    secret: str


def get(session: Session, endpoint_id: int) -> WebhookEndpoint:
    """One endpoint (NotFound when there is none)."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(N_("No webhook endpoint has the id %(id)s"), params={"id": endpoint_id})
    return endpoint


def list_endpoints(session: Session) -> list[WebhookEndpoint]:
    """Every endpoint, oldest first."""
    return list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def create(
    session: Session,
    *,
    url: str,
    types: Sequence[str],
    actor: str,
    secret: str | None = None,
    description: str = "",
    enabled: bool = True,
) -> Created:
    """Register an endpoint; its secret (made when not given) comes back this once."""
    url = url.strip()
    check_url(url)
    chosen = _check_events(types)
    plain = _check_secret(secret)
    if (session.scalar(select(func.count()).select_from(WebhookEndpoint)) or 0) >= MAX_ENDPOINTS:
        raise Invalid(
            N_("At most %(limit)s webhook endpoints can be registered"),
            params={"limit": MAX_ENDPOINTS},
        )
    now = utcnow()
    endpoint = WebhookEndpoint(
        url=url,
        description=description.strip(),
        events=chosen,
        secret=encrypt(plain),
        enabled=enabled,
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    session.flush()
    # The URL and the types; never the secret.
    audit.record(
        session, actor, "webhook.created", str(endpoint.id), {"url": url, "events": chosen}
    )
    events.endpoints_changed(session)
    return Created(endpoint, plain)


_UNSET: Any = object()


def update(
    session: Session,
    endpoint_id: int,
    *,
    actor: str,
    url: str | None = None,
    types: Sequence[str] | None = None,
    enabled: bool | None = None,
    description: str | None = None,
    rotate_secret: bool = False,
) -> tuple[WebhookEndpoint, str | None]:
    """Change what is given; a new secret (when rotated) comes back this once."""
    endpoint = get(session, endpoint_id)
    changed: dict[str, Any] = {}
    if url is not None and url.strip() != endpoint.url:
        check_url(url.strip())
        endpoint.url = changed["url"] = url.strip()
    if types is not None:
        chosen = _check_events(types)
        if chosen != endpoint.events:
            endpoint.events = changed["events"] = chosen
    if description is not None and description.strip() != endpoint.description:
        endpoint.description = changed["description"] = description.strip()
    if enabled is not None and enabled != endpoint.enabled:
        endpoint.enabled = changed["enabled"] = enabled
        if enabled:
            # A fresh start: the 24 hours of failures count from now.
            endpoint.failing_since, endpoint.disabled_reason = None, None
    plain = None
    if rotate_secret:
        plain = signing.new_secret()
        endpoint.secret = encrypt(plain)
        changed["secret"] = "rotated"  # noqa: S105 (what happened, never the secret)
    if changed:
        endpoint.updated_at = utcnow()
        audit.record(session, actor, "webhook.changed", str(endpoint.id), changed)
        events.endpoints_changed(session)
        if endpoint.enabled:
            events.kick(session)  # deliveries held while it was off go now
    session.flush()
    return endpoint, plain


def delete(session: Session, endpoint_id: int, actor: str) -> None:
    """Remove an endpoint with its deliveries and their attempts."""
    endpoint = get(session, endpoint_id)
    ids = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint.id)
    session.execute(sa_delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)))
    session.execute(sa_delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    audit.record(session, actor, "webhook.deleted", str(endpoint.id), {"url": endpoint.url})
    session.delete(endpoint)
    events.endpoints_changed(session)
    session.flush()


def send_test(session: Session, endpoint_id: int, actor: str) -> WebhookDelivery:
    """Queue a `webhook.test` event for this endpoint only (sent once it is enabled)."""
    endpoint = get(session, endpoint_id)
    data = {"endpoint_id": endpoint.id, "requested_by": actor, "at": utcnow().isoformat()}
    events.emit(session, events.TEST_EVENT, [("webhook.test", data)], endpoints=[endpoint.id])
    delivery = session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint.id)
        .order_by(WebhookDelivery.id.desc())
        .limit(1)
    ).one()
    return delivery


def replay(session: Session, endpoint_id: int, delivery_id: int, actor: str) -> WebhookDelivery:
    """Send a delivered or failed event again now: the same body and the same webhook-id.

    It is a new delivery row (the old one keeps its history), behind the key's pending
    events like any other.
    """
    endpoint = get(session, endpoint_id)
    old = session.get(WebhookDelivery, delivery_id)
    if old is None or old.endpoint_id != endpoint.id:
        raise NotFound(N_("No delivery %(id)s for this endpoint"), params={"id": delivery_id})
    now = utcnow()
    again = WebhookDelivery(
        endpoint_id=endpoint.id,
        event_id=old.event_id,
        type=old.type,
        key=old.key,
        body=old.body,
        state=events.PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(again)
    session.flush()
    audit.record(
        session,
        actor,
        "webhook.replayed",
        str(endpoint.id),
        {"delivery": old.id, "event": old.event_id, "replay": again.id},
    )
    events.kick(session)
    return again


def deliveries(
    session: Session, endpoint_id: int, cursor: str | None = None, limit: int = PAGE
) -> tuple[list[tuple[WebhookDelivery, list[WebhookAttempt]]], str | None]:
    """The endpoint's deliveries, newest first, each with its attempts; the next cursor."""
    endpoint = get(session, endpoint_id)
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    if cursor:
        query = query.where(WebhookDelivery.id < cursor_id(cursor))
    rows = list(session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    attempts: dict[int, list[WebhookAttempt]] = {row.id: [] for row in rows}
    if rows:
        for attempt in session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(attempts)))
            .order_by(WebhookAttempt.id)
        ):
            attempts[attempt.delivery_id].append(attempt)
    nxt = encode_cursor(rows[-1].id) if more and rows else None
    return [(row, attempts[row.id]) for row in rows], nxt


def pending_count(session: Session, endpoint_id: int) -> int:
    """How many deliveries of this endpoint wait (for a first try or a retry)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(
                WebhookDelivery.endpoint_id == endpoint_id,
                WebhookDelivery.state == events.PENDING,
            )
        )
        or 0
    )
