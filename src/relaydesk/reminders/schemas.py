"""API shapes of reminders and their runs."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from relaydesk.messaging.service import MAX_BODY

MAX_INTERVAL_MINUTES = 366 * 24 * 60


class ReminderIn(BaseModel):
    """POST /api/reminders."""

    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=1, max_length=64, examples=["+48600100200"])
    body: str = Field(min_length=1, max_length=MAX_BODY)
    interval_minutes: int = Field(ge=1, le=MAX_INTERVAL_MINUTES, examples=[60])
    start_at: datetime | None = Field(
        default=None,
        description="when the first message goes out (ISO 8601 with a time zone; without "
        "one: UTC); default now",
    )


class ReminderPatch(BaseModel):
    """PATCH /api/reminders/{id}: omitted fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    body: str | None = Field(default=None, min_length=1, max_length=MAX_BODY)
    interval_minutes: int | None = Field(default=None, ge=1, le=MAX_INTERVAL_MINUTES)
    enabled: bool | None = None


class ReminderOut(BaseModel):
    """A reminder as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    to: str = Field(validation_alias=AliasChoices("to", "to_addr"))
    participant: str
    channel: str
    body: str
    interval_minutes: int
    enabled: bool
    status: Literal["active", "paused"]
    start_at: datetime
    next_run_at: datetime | None = Field(description="null while paused")
    run_count: int
    last_run_at: datetime | None
    last_outcome: Literal["sent", "skipped"] | None
    last_reason: str | None = Field(description="why the last run sent nothing, e.g. opted_out")
    last_detail: str | None
    last_message_id: int | None
    created_by: str
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="after")
    def _no_next_run_while_paused(self) -> ReminderOut:
        if not self.enabled:
            self.next_run_at = None
        return self


class ReminderRunOut(BaseModel):
    """One run of a reminder."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    seq: int
    due_at: datetime
    ran_at: datetime
    outcome: Literal["sent", "skipped"]
    reason: str | None
    detail: str | None
    missed_runs: int = Field(description="slots that passed during downtime, caught up by this run")
    message_id: int | None
