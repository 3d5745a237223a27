"""What a customer's profile shows: the API's answer and the panel's context alike.

The voice bot's calls and the campaigns are domains above the inbox: they fill
`CallItem` and `CampaignItem` for the profile through `profiles.register_section`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from relaydesk.contacts.models import AttributeKind

T = TypeVar("T")


class AttributeOut(BaseModel):
    """A custom attribute's definition."""

    model_config = ConfigDict(from_attributes=True)

    key: str = Field(description="what canned answers write as {{contact.<key>}}")
    name: str
    kind: AttributeKind
    options: list[str] = Field(description="a list's choices; [] for the other kinds")


class ChannelOut(BaseModel):
    """One channel the customer is reachable on, and their consent there."""

    channel: str = Field(description="sms | whatsapp")
    address: str = Field(description='the number as Twilio writes it ("whatsapp:+48…")')
    opted_out: bool
    opted_out_at: datetime | None
    opt_out_reason: str | None
    opted_in_at: datetime | None
    first_seen_at: datetime


class ConversationRef(BaseModel):
    """One conversation row of the customer (one per our number and channel)."""

    our_address: str
    channel: str
    status: str
    assignee_id: int | None
    assignee: str | None
    last_message_at: datetime | None


class CallItem(BaseModel):
    """A voice-bot call with the customer's number."""

    conversation_id: str = Field(description="ElevenLabs' id: GET /api/voicebot/conversations/{id}")
    start_time: datetime
    duration_secs: int
    direction: str | None
    status: str
    call_successful: str = Field(description="success | failure | unknown")
    agent_name: str | None
    title: str | None
    summary: str | None


class CampaignItem(BaseModel):
    """A campaign (Multi-SMS batch) the customer was a recipient of."""

    batch_id: int
    body: str
    batch_status: str
    status: str = Field(
        description="the recipient's, as the campaign lists it: pending | sending | sent | "
        "delivered | undelivered | failed | skipped"
    )
    reason: str | None = Field(description="why it was skipped or failed")
    created_at: datetime
    finished_at: datetime | None


class Section(BaseModel, Generic[T]):
    """The newest items of one kind (at most 10) and how many there are."""

    total: int
    items: list[T]


NameSource = Literal["edited", "profile_name"]


class ProfileOut(BaseModel):
    """Everything the team knows about one customer, on every channel."""

    participant: str = Field(description="the customer's number, E.164")
    name: str | None = Field(description="the edited name, else the name the customer gave")
    profile_name: str | None = Field(
        description="the name the customer gave (WhatsApp's ProfileName), newest first"
    )
    name_source: NameSource | None = Field(
        description="edited: a person wrote `name`; profile_name: it is the customer's own"
    )
    note: str
    attributes: dict[str, str | int | float] = Field(
        description="values by key, for defined attributes only (a number, text, "
        'a date "YYYY-MM-DD", a list\'s option)'
    )
    attribute_definitions: list[AttributeOut]
    labels: list[str] = Field(description="label names, as on the customer's conversations")
    channels: list[ChannelOut]
    conversations: list[ConversationRef]
    calls: Section[CallItem] = Field(description="voice-bot calls, newest first")
    campaigns: Section[CampaignItem] = Field(description="campaigns received, newest first")
    updated_by: str | None = Field(description="who last edited the profile")
    updated_at: datetime | None
