"""The Webhooks tab (admins): endpoints, their recent deliveries, replay and test."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from relaydesk.core import events
from relaydesk.core.db import session_scope
from relaydesk.deps import Id
from relaydesk.web.deps import PanelAdmin
from relaydesk.web.templating import render
from relaydesk.webhooks_out import service

router = APIRouter(include_in_schema=False)

RECENT = 10  # deliveries shown per endpoint

Url = Annotated[str, Form(max_length=2000)]
Types = Annotated[list[str] | None, Form(max_length=len(events.EVENT_TYPES) * 2)]
Text = Annotated[str, Form(max_length=200)]


def _context(**extra: Any) -> dict[str, Any]:
    with session_scope(write=False) as session:
        rows = []
        for endpoint in service.list_endpoints(session):
            recent, _ = service.deliveries(session, endpoint.id, limit=RECENT)
            rows.append(
                {
                    "endpoint": endpoint,
                    "pending": service.pending_count(session, endpoint.id),
                    "recent": recent,
                }
            )
    return {"tab": "webhooks", "rows": rows, "event_types": events.EVENT_TYPES, **extra}


def _panel(request: Request, user: Any, **extra: Any) -> Response:
    return render(request, "webhooks_out/_endpoints.html", _context(**extra), user=user)


@router.get("/webhooks", response_class=HTMLResponse)
def webhooks_page(request: Request, user: PanelAdmin) -> Response:
    """Endpoints that receive events, their deliveries, and a form for a new one."""
    return render(request, "webhooks_out/index.html", _context(), user=user)


@router.get("/webhooks/panel", response_class=HTMLResponse)
def webhooks_panel(request: Request, user: PanelAdmin) -> Response:
    """The endpoints and their deliveries again (the Refresh button)."""
    return _panel(request, user)


@router.post("/webhooks", response_class=HTMLResponse)
def create_endpoint(
    request: Request, user: PanelAdmin, url: Url = "", event: Types = None, description: Text = ""
) -> Response:
    """Register an endpoint; its secret is shown in the answer, once."""
    with session_scope() as session:
        made = service.create(
            session, url=url, types=event or [], actor=user.actor, description=description
        )
        shown = {"id": made.endpoint.id, "secret": made.secret}
    return _panel(request, user, new_secret=shown)


@router.post("/webhooks/{endpoint_id}/enabled", response_class=HTMLResponse)
def set_enabled(
    request: Request, endpoint_id: Id, user: PanelAdmin, enabled: Annotated[str, Form()] = ""
) -> Response:
    """Switch an endpoint on or off."""
    with session_scope() as session:
        service.update(session, endpoint_id, actor=user.actor, enabled=enabled == "true")
    return _panel(request, user)


@router.post("/webhooks/{endpoint_id}/rotate", response_class=HTMLResponse)
def rotate_secret(request: Request, endpoint_id: Id, user: PanelAdmin) -> Response:
    """A new signing secret, shown once; the old one stops working at once."""
    with session_scope() as session:
        _, secret = service.update(session, endpoint_id, actor=user.actor, rotate_secret=True)
    return _panel(request, user, new_secret={"id": endpoint_id, "secret": secret})


@router.post("/webhooks/{endpoint_id}/test", response_class=HTMLResponse)
def send_test(request: Request, endpoint_id: Id, user: PanelAdmin) -> Response:
    """Queue a webhook.test event for this endpoint."""
    with session_scope() as session:
        service.send_test(session, endpoint_id, user.actor)
    return _panel(request, user)


@router.post("/webhooks/{endpoint_id}/delete", response_class=HTMLResponse)
def delete_endpoint(request: Request, endpoint_id: Id, user: PanelAdmin) -> Response:
    """Remove an endpoint and its deliveries (asked to confirm first)."""
    with session_scope() as session:
        service.delete(session, endpoint_id, user.actor)
    return _panel(request, user)


@router.post("/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay", response_class=HTMLResponse)
def replay(request: Request, endpoint_id: Id, delivery_id: Id, user: PanelAdmin) -> Response:
    """Send a delivery's event again now (the same webhook-id)."""
    with session_scope() as session:
        service.replay(session, endpoint_id, delivery_id, user.actor)
    return _panel(request, user)
