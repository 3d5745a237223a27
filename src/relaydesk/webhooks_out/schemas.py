"""API shapes of outgoing webhooks: endpoints (the secret only once) and deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from relaydesk.core import events

EventType = Literal[
    "message.received",
    "message.sent",
    "message.status",
    "conversation.status",
    "conversation.assigned",
    "contact.opted_out",
    "contact.opted_in",
    "campaign.finished",
    "voicebot.call_synced",
]
assert set(EventType.__args__) == set(events.EVENT_TYPES)  # type: ignore[attr-defined]

Url = Annotated[
    str,
    Field(
        min_length=8,
        max_length=2000,
        description="http(s) address the events are POSTed to; internal addresses are "
        "refused unless WEBHOOKS_ALLOW_PRIVATE_NETWORKS=true",
        examples=["https://crm.example.com/hooks/relaydesk"],
    ),
]
Events = Annotated[
    list[EventType],
    Field(min_length=1, max_length=len(events.EVENT_TYPES), description="event types sent"),
]


class EndpointIn(BaseModel):
    """POST /api/webhooks."""

    model_config = ConfigDict(extra="forbid")

    url: Url
    events: Events
    secret: str | None = Field(
        default=None,
        min_length=30,
        max_length=100,
        description="whsec_ and the base64 of 24-64 random bytes; left out: one is made "
        "and returned this once",
    )
    description: str = Field(default="", max_length=200)
    enabled: bool = True


class EndpointPatch(BaseModel):
    """PATCH /api/webhooks/{id}: what is given changes."""

    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    events: Events | None = None
    description: str | None = Field(default=None, max_length=200)
    enabled: bool | None = Field(
        default=None, description="true again after an automatic disable starts afresh"
    )
    rotate_secret: bool = Field(
        default=False, description="make a new secret; the answer shows it this once"
    )


class EndpointOut(BaseModel):
    """An endpoint; its secret is never shown again after it was made."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    description: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None = Field(description="why it was disabled automatically")
    failing_since: datetime | None = Field(description="no delivery has succeeded since")
    created_at: datetime
    updated_at: datetime
    pending: int = Field(default=0, description="deliveries waiting for a try or a retry")


class EndpointCreated(EndpointOut):
    """The answer that creates an endpoint or rotates its secret."""

    secret: str = Field(description="the signing secret: shown this once, store it now")


class AttemptOut(BaseModel):
    """One POST of a delivery."""

    model_config = ConfigDict(from_attributes=True)

    at: datetime
    status_code: int | None = Field(description="the receiver's HTTP status (none: no answer)")
    latency_ms: int
    response: str | None = Field(description="the start of the receiver's answer")
    error: str | None


class DeliveryOut(BaseModel):
    """One event for one endpoint, with its attempts."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    event_id: str = Field(description="the webhook-id header (the same for a replay)")
    type: str
    key: str = Field(description="what keeps events in order: a customer's number")
    state: str = Field(description="pending | delivered | failed")
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    history: list[AttemptOut] = Field(default_factory=list)


class DeliveryPage(BaseModel):
    """Deliveries, newest first."""

    items: list[DeliveryOut]
    next: str | None
