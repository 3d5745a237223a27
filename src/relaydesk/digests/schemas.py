"""API shapes of digest recipients, digest previews and the news_config.json import."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

MAX_PROMPT = 2000

Mode = Literal["all_categories", "custom_prompt"]


class RecipientIn(BaseModel):
    """POST /api/news/recipients."""

    model_config = ConfigDict(extra="forbid")

    phone: str = Field(min_length=1, max_length=64, examples=["+48600100200"])
    send_time: str = Field(max_length=8, examples=["08:00"], description="HH:MM, local")
    timezone: str = Field(default="Europe/Warsaw", max_length=64, description="IANA name")
    mode: Mode = "all_categories"
    prompt: str | None = Field(
        default=None, max_length=MAX_PROMPT, description="required for custom_prompt"
    )
    enabled: bool = True


class RecipientPatch(BaseModel):
    """PATCH /api/news/recipients/{id}: omitted fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    phone: str | None = Field(default=None, min_length=1, max_length=64)
    send_time: str | None = Field(default=None, max_length=8)
    timezone: str | None = Field(default=None, max_length=64)
    mode: Mode | None = None
    prompt: str | None = Field(default=None, max_length=MAX_PROMPT)
    enabled: bool | None = None

    @model_validator(mode="after")
    def _no_null_for_required(self) -> RecipientPatch:
        # null clears the prompt and resets the time zone; these have nothing to clear to.
        cleared = [
            name
            for name in ("phone", "send_time", "mode", "enabled")
            if name in self.model_fields_set and getattr(self, name) is None
        ]
        if cleared:
            raise ValueError(f"{', '.join(cleared)} cannot be null: leave it out to keep it")
        return self


class RecipientOut(BaseModel):
    """A recipient as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    phone: str
    send_time: str
    timezone: str
    mode: Mode
    prompt: str | None
    enabled: bool
    next_send_at: datetime | None = Field(description="the next scheduled digest; null if off")
    last_sent_at: datetime | None
    last_sent_on: str | None = Field(description="local date of the last scheduled digest")
    last_outcome: Literal["sent", "skipped", "failed"] | None
    last_detail: str | None = Field(description="why the last digest was skipped or failed")
    last_message_id: int | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _scheduled(cls, data: Any, info: ValidationInfo) -> Any:
        # A row knows no next digest time: it depends on the clock, so service.view works
        # it out and passes it in the context.
        if isinstance(data, dict) or not info.context or "next_send_at" not in info.context:
            return data
        upcoming = info.context["next_send_at"]
        return {
            name: upcoming if name == "next_send_at" else getattr(data, name)
            for name in cls.model_fields
        }


class SourceOut(BaseModel):
    """A passage a digest is built on."""

    model_config = ConfigDict(from_attributes=True)

    title: str
    url: str
    category: str
    score: float
    excerpt: str


class DigestPreview(BaseModel):
    """POST /api/news/recipients/{id}/test: the digest, not sent."""

    model_config = ConfigDict(from_attributes=True)

    text: str
    segments: int
    sources: list[SourceOut]
    model: str | None = Field(description="the LLM that wrote it; null: built from headlines")
    note: str | None = Field(description="why there is no LLM answer, when there is none")


class ImportProblem(BaseModel):
    """An entry of the file that was not imported."""

    index: int
    phone: Any = None
    error: str


class ImportDuplicate(BaseModel):
    """An entry that is already a recipient."""

    index: int
    phone: str
    id: int


class ImportOut(BaseModel):
    """POST /api/news/config/import."""

    created: list[RecipientOut]
    duplicates: list[ImportDuplicate]
    problems: list[ImportProblem]
