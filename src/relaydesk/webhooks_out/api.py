"""REST routes of outgoing webhooks (admins only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from relaydesk.deps import Admin, Id, SessionDep, WriteSessionDep
from relaydesk.webhooks_out import service
from relaydesk.webhooks_out.models import WebhookEndpoint
from relaydesk.webhooks_out.schemas import (
    AttemptOut,
    DeliveryOut,
    DeliveryPage,
    EndpointCreated,
    EndpointIn,
    EndpointOut,
    EndpointPatch,
)

router = APIRouter(tags=["webhooks"])
Cursor = Annotated[str | None, Query(max_length=100)]


def _out(session: Session, endpoint: WebhookEndpoint) -> EndpointOut:
    out = EndpointOut.model_validate(endpoint)
    out.pending = service.pending_count(session, endpoint.id)
    return out


@router.get("/api/webhooks", response_model=list[EndpointOut])
def list_endpoints(principal: Admin, session: SessionDep) -> list[EndpointOut]:
    """The registered endpoints (never their secrets)."""
    return [_out(session, e) for e in service.list_endpoints(session)]


@router.post(
    "/api/webhooks",
    response_model=EndpointCreated,
    status_code=201,
    responses={422: {"description": "A bad or internal URL, unknown events, a bad secret"}},
)
def create_endpoint(
    payload: EndpointIn, principal: Admin, session: WriteSessionDep
) -> EndpointCreated:
    """Register an endpoint. The answer holds its signing secret: the only time it is shown."""
    made = service.create(
        session,
        url=payload.url,
        types=payload.events,
        actor=principal.actor,
        secret=payload.secret,
        description=payload.description,
        enabled=payload.enabled,
    )
    return EndpointCreated(**_out(session, made.endpoint).model_dump(), secret=made.secret)


@router.get("/api/webhooks/{endpoint_id}", response_model=EndpointOut)
def get_endpoint(endpoint_id: Id, principal: Admin, session: SessionDep) -> EndpointOut:
    """One endpoint."""
    return _out(session, service.get(session, endpoint_id))


@router.patch(
    "/api/webhooks/{endpoint_id}",
    response_model=EndpointOut | EndpointCreated,
    responses={404: {"description": "No such endpoint"}, 422: {"description": "Bad values"}},
)
def change_endpoint(
    endpoint_id: Id, payload: EndpointPatch, principal: Admin, session: WriteSessionDep
) -> Any:
    """Change the URL, events, description or state; `rotate_secret` returns a new secret."""
    endpoint, secret = service.update(
        session,
        endpoint_id,
        actor=principal.actor,
        url=payload.url,
        types=payload.events,
        enabled=payload.enabled,
        description=payload.description,
        rotate_secret=payload.rotate_secret,
    )
    out = _out(session, endpoint)
    if secret is not None:
        return EndpointCreated(**out.model_dump(), secret=secret)
    return out


@router.delete("/api/webhooks/{endpoint_id}", status_code=204)
def delete_endpoint(endpoint_id: Id, principal: Admin, session: WriteSessionDep) -> Response:
    """Remove an endpoint with its delivery history."""
    service.delete(session, endpoint_id, principal.actor)
    return Response(status_code=204)


@router.get("/api/webhooks/{endpoint_id}/deliveries", response_model=DeliveryPage)
def list_deliveries(
    endpoint_id: Id, principal: Admin, session: SessionDep, cursor: Cursor = None
) -> DeliveryPage:
    """The endpoint's deliveries, newest first, each with every attempt."""
    rows, nxt = service.deliveries(session, endpoint_id, cursor)
    items = []
    for delivery, attempts in rows:
        out = DeliveryOut.model_validate(delivery)
        out.history = [AttemptOut.model_validate(a) for a in attempts]
        items.append(out)
    return DeliveryPage(items=items, next=nxt)


@router.post(
    "/api/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay",
    response_model=DeliveryOut,
    status_code=202,
)
def replay_delivery(
    endpoint_id: Id, delivery_id: Id, principal: Admin, session: WriteSessionDep
) -> DeliveryOut:
    """Send the event again now: the same body and webhook-id (a new delivery row)."""
    again = service.replay(session, endpoint_id, delivery_id, principal.actor)
    return DeliveryOut.model_validate(again)


@router.post("/api/webhooks/{endpoint_id}/test", response_model=DeliveryOut, status_code=202)
def test_endpoint(endpoint_id: Id, principal: Admin, session: WriteSessionDep) -> DeliveryOut:
    """Queue a `webhook.test` event for this endpoint."""
    return DeliveryOut.model_validate(service.send_test(session, endpoint_id, principal.actor))
