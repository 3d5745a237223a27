"""API shapes of campaigns (Multi-SMS batches) and their recipients."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

MAX_ID = 2**63 - 1


class BatchIn(BaseModel):
    """The text and its recipients: numbers pasted as they come (commas, semicolons,
    spaces, lines) or a saved segment (exactly one of the two)."""

    model_config = ConfigDict(extra="forbid")

    numbers: str = Field("", max_length=200_000)
    segment_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="send to a segment's members instead of `numbers`",
    )
    body: str = Field(..., max_length=1600)
    send_at: datetime | None = None


class InvalidEntry(BaseModel):
    """An entry of the list that is not a phone number, and why."""

    input: str
    reason: str


class Counters(BaseModel):
    """Recipients per state (sent includes delivered)."""

    pending: int
    sending: int
    sent: int
    delivered: int
    failed: int
    skipped: int


class BatchOut(BaseModel):
    """A campaign with its counters and progress (0..1)."""

    id: int
    status: str
    body: str
    sender: str
    total: int
    valid: int
    duplicates: int
    invalid: list[InvalidEntry]
    segments_per_message: int
    estimated_segments: int
    send_at: datetime | None
    note: str | None
    counters: Counters
    progress: float
    created_by: str | None
    segment_id: int | None = None
    segment_name: str | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RecipientOut(BaseModel):
    """One recipient: status through its message, Twilio's error and its meaning."""

    id: int
    input: str
    number: str
    status: str
    reason: str | None
    message_id: int | None
    sid: str | None
    error_code: int | None
    error_message: str | None
    updated_at: datetime | None


class PreviewIn(BaseModel):
    """A list and a text to count before creating anything."""

    model_config = ConfigDict(extra="forbid")

    numbers: str = Field("", max_length=200_000)
    segment_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    body: str = Field("", max_length=1600)


class PreviewOut(BaseModel):
    """How many numbers are valid, duplicate or invalid, and the cost in segments."""

    total: int
    valid: int
    duplicates: int
    invalid: list[InvalidEntry]
    segments_per_message: int
    estimated_segments: int
    limit: int
    skipped: list[InvalidEntry] = Field(
        default_factory=list,
        description="a segment's members the campaign would skip (opted out), and why",
    )
    whatsapp: int = Field(0, description="valid recipients on WhatsApp")
    whatsapp_window_open: int = Field(
        0,
        description="of them, those who wrote within 24 hours (a segment's count): free "
        "text reaches only them, the others are skipped at send time with the reason",
    )
