"""API shapes of segments: the rules (a small, bounded JSON structure) and the answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from relaydesk.deps import MAX_ID

MAX_NAME = 100
MAX_LABEL_RULES = 5
MAX_ATTRIBUTE_RULES = 10
MAX_VALUES = 50  # labels in one label rule, options in one "one of"
MAX_DAYS = 3650
MAX_NUMBER = 10**15  # as contact attributes (inbox.attributes.MAX_NUMBER)

LabelId = Annotated[int, Field(ge=1, le=MAX_ID)]
Text = Annotated[StrictStr, Field(max_length=500)]
Number = Annotated[StrictInt, Field(ge=-MAX_NUMBER, le=MAX_NUMBER)]
Decimal = Annotated[StrictFloat, Field(ge=-MAX_NUMBER, le=MAX_NUMBER, allow_inf_nan=False)]
Option = Annotated[StrictStr, Field(max_length=100)]
Key = Annotated[str, Field(max_length=40, pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Channel = Literal["sms", "whatsapp"]
Status = Literal["open", "pending", "snoozed", "resolved"]


class LabelRule(BaseModel):
    """A customer has a label when any of their conversations carries it."""

    model_config = ConfigDict(extra="forbid")

    match: Literal["any", "all", "none"] = Field(
        description="has any of / has all of / has none of these labels"
    )
    label_ids: list[LabelId] = Field(min_length=1, max_length=MAX_VALUES)


class AttributeRule(BaseModel):
    """A custom attribute's value compared by its type.

    text: equals | contains; number and date ("YYYY-MM-DD"): equals | lt | lte | gt | gte;
    list: one_of (values: some of the list's options). A contact without a value never
    matches (not even "not equals": there is none).
    """

    model_config = ConfigDict(extra="forbid")

    key: Key
    op: Literal["equals", "contains", "lt", "lte", "gt", "gte", "one_of"]
    value: Text | Number | Decimal | None = None
    values: list[Option] = Field(default_factory=list, max_length=MAX_VALUES)


class Rules(BaseModel):
    """Every rule given must hold (AND); no rule at all means every contact."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel | None = Field(default=None, description="sms | whatsapp; null: both")
    opted_in_only: bool = Field(
        default=False,
        description="leave out contacts opted out on the channel (otherwise they are "
        "listed as skipped, with the reason)",
    )
    labels: list[LabelRule] = Field(default_factory=list, max_length=MAX_LABEL_RULES)
    attributes: list[AttributeRule] = Field(default_factory=list, max_length=MAX_ATTRIBUTE_RULES)
    last_inbound_within_days: int | None = Field(
        default=None, ge=1, le=MAX_DAYS, description="wrote to us within this many days"
    )
    conversation_status: list[Status] = Field(
        default_factory=list,
        max_length=4,
        description="has a conversation in one of these states",
    )


class SegmentIn(BaseModel):
    """POST /api/segments."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_NAME, examples=["VIP in Warsaw"])
    rules: Rules


class SegmentPatch(BaseModel):
    """PATCH /api/segments/{id}: what is given changes."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME)
    rules: Rules | None = None


class Skipped(BaseModel):
    """A member that a campaign would not reach, and why."""

    number: str = Field(description="as Twilio writes it: +48… or whatsapp:+48…")
    reason: str


class CountOut(BaseModel):
    """How many contacts match, how many a campaign would reach, how many it would skip."""

    matching: int
    recipients: int
    skipped: int
    whatsapp: int = Field(description="recipients on WhatsApp")
    whatsapp_window_open: int = Field(
        description="WhatsApp recipients who wrote within 24 hours: free text reaches only "
        "them; the others are skipped when the campaign sends, with the reason"
    )
    limit: int = Field(description="the most recipients a campaign may have")


class SegmentOut(BaseModel):
    """A saved segment."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    rules: Rules
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class MemberOut(BaseModel):
    """One contact of a segment."""

    contact_id: int
    number: str = Field(description="as Twilio writes it: +48… or whatsapp:+48…")
    channel: Channel
    name: str | None
    opted_out: bool
    last_inbound_at: datetime | None


class MembersPage(BaseModel):
    """A page of a segment's contacts, by contact id; `next` is the following page's cursor."""

    items: list[MemberOut]
    next: str | None
