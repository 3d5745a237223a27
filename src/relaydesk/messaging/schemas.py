"""API shapes of messages and conversations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from relaydesk.messaging.models import ConversationStatus, Priority
from relaydesk.messaging.service import MAX_INPUT


class MediaOut(BaseModel):
    """An attachment of a message."""

    id: int | None = None
    kind: str | None = Field(
        default=None, description="image | audio | video | document | contact | other"
    )
    content_type: str | None = None
    size: int | None = None
    url: str | None = Field(
        default=None,
        description="relaydesk's own address for the file (signed-in users only); "
        "an outbound file kept elsewhere keeps its own address",
    )
    state: str | None = Field(
        default=None,
        description="pending (being fetched) | stored | refused (limits or type) | failed | "
        "remote (an outbound file at another address)",
    )
    error: str | None = None
    transcript: str | None = Field(default=None, description="what a voice note says")
    description: str | None = Field(default=None, description="what an image shows")


class MessageOut(BaseModel):
    """A message as the API shows it."""

    model_config = ConfigDict(populate_by_name=True, from_attributes=True)

    id: int
    sid: str | None
    direction: str
    channel: str
    from_: str = Field(
        validation_alias=AliasChoices("from", "from_addr"), serialization_alias="from"
    )
    to: str = Field(validation_alias=AliasChoices("to", "to_addr"))
    participant: str
    body: str
    status: str
    error_code: int | None
    error_message: str | None
    num_segments: int
    encoding: str | None
    source: str
    attempts: int
    created_at: datetime
    updated_at: datetime
    media: list[MediaOut]
    scheduled_at: datetime | None = Field(
        default=None, description="the send time asked for, when the message was scheduled"
    )

    @field_validator("media", mode="before")
    @classmethod
    def _no_media(cls, value: Any) -> Any:
        """A row without attachments may hold null."""
        return value or []


class Counts(BaseModel):
    """Totals over the whole history."""

    total: int
    inbound: int
    outbound: int


class MessagePage(BaseModel):
    """One page of messages, newest first."""

    items: list[MessageOut]
    next: str | None
    counts: Counts


class ConversationOut(BaseModel):
    """One row of the inbox."""

    id: int
    participant: str
    channel: str
    our_address: str
    profile_name: str | None
    last_message_at: datetime | None
    last_body: str | None
    last_direction: str | None
    message_count: int
    unread: int = Field(description="customer messages nobody has marked read")
    unread_count: int = Field(
        description="customer messages the caller has not read (a token without a user: "
        "the same as unread)"
    )
    opted_out: bool
    status: ConversationStatus
    snoozed_until: datetime | None
    assignee_id: int | None
    assignee: str | None = Field(description="the owner's name")
    priority: Priority
    labels: list[str] = Field(default_factory=list, description="label names, by name")


class ConversationPage(BaseModel):
    """One page of conversations, most recent first."""

    items: list[ConversationOut]
    next: str | None


class ConversationEventOut(BaseModel):
    """A change to the conversation: who did what, when."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str = Field(
        description="assigned | status | priority | reopened | snooze_ended | labels "
        "(data: {added, removed}, label names)"
    )
    actor: str = Field(description="the user's name, or customer / clock")
    actor_id: int | None
    data: dict[str, Any]
    created_at: datetime


class ConversationThread(BaseModel):
    """The messages exchanged with one participant, oldest first."""

    participant: str
    opted_out: bool
    items: list[MessageOut]
    before: str | None = Field(description="cursor for older messages, or null")
    status: ConversationStatus | None = None
    snoozed_until: datetime | None = None
    assignee_id: int | None = None
    assignee: str | None = None
    priority: Priority | None = None
    labels: list[str] = Field(
        default_factory=list, description="the customer's label names, by name"
    )
    events: list[ConversationEventOut] = Field(
        default_factory=list, description="state, owner and priority changes, oldest first"
    )


class ConversationPatch(BaseModel):
    """PATCH /api/conversations/{participant}: only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    status: ConversationStatus | None = None
    snoozed_until: datetime | None = Field(
        default=None,
        description="with status snoozed: when it opens again (ISO 8601 with a time zone)",
    )
    assignee_id: int | None = Field(
        default=None, ge=1, le=2**63 - 1, description="a user's id; null: nobody"
    )
    priority: Priority | None = None


class SendMessageIn(BaseModel):
    """POST /api/send-message."""

    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=1, max_length=64, examples=["+48600100200"])
    body: str | None = Field(default=None, max_length=MAX_INPUT)
    media_urls: list[str] = Field(default_factory=list, max_length=20)
    content_sid: str | None = Field(default=None, max_length=64)
    content_variables: dict[str, str] | None = None
    from_: str | None = Field(default=None, alias="from", max_length=64)
    send_at: datetime | None = Field(
        default=None,
        description="send later: ISO 8601 with a time zone (without one: UTC), "
        "in the future and at most a year ahead",
        examples=["2030-01-31T09:00:00+01:00"],
    )


class DayStats(BaseModel):
    """Message counts of one day (UTC)."""

    day: str
    inbound: int
    outbound: int


class Stats(BaseModel):
    """Counts per direction, status and day."""

    counts: Counts
    by_status: dict[str, int]
    by_day: list[DayStats]
    days: int
