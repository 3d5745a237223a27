"""API shapes of the news module: sources, jobs, files and settings."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from relaydesk.indexes.schemas import RetrievalSettings
from relaydesk.news.sources import MAX_URL_LENGTH


class SourceIn(BaseModel):
    """A feed or section page for a category (the category is created on first use)."""

    model_config = ConfigDict(extra="forbid")

    category: str = Field(..., min_length=1, max_length=100)
    url: str = Field(..., min_length=1, max_length=MAX_URL_LENGTH)
    kind: Literal["feed", "page"] = "feed"


class SourceOut(BaseModel):
    """One source."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    category: str
    label: str
    url: str
    kind: str
    created_at: datetime

    @model_validator(mode="after")
    def _category_names_it(self) -> SourceOut:
        # A source stored without a label of its own goes by its category.
        self.label = self.label or self.category
        return self


class CategoryOut(BaseModel):
    """A category with its sources."""

    category: str
    label: str
    sources: list[SourceOut]


class ScrapeIn(BaseModel):
    """Which categories to fetch (all when omitted), and whether to update the index."""

    model_config = ConfigDict(extra="forbid")

    categories: list[str] | None = Field(None, max_length=200)
    build: bool = Field(
        True, description="then update the active index (or 'news') from every category"
    )


class BuildIn(BaseModel):
    """Which index to build and from which categories (all when omitted)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("news", min_length=1, max_length=63)
    categories: list[str] | None = Field(None, max_length=200)


class JobStarted(BaseModel):
    """A queued job: poll GET /api/jobs/{job_id}."""

    job_id: int


class FileOut(BaseModel):
    """A stored category file."""

    name: str
    category: str
    kind: Literal["json", "txt"]
    size: int
    modified: datetime


class DeletedFiles(BaseModel):
    """The files that were deleted."""

    deleted: list[str]


class ScheduleSettings(BaseModel):
    """A daily scrape and index build at a local time (null: only on demand)."""

    model_config = ConfigDict(extra="forbid")

    scrape_at: str | None = Field(None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    timezone: str = Field("Europe/Warsaw", min_length=1, max_length=64)


class ScheduleOut(ScheduleSettings):
    """The schedule and the local date of its last run."""

    last_run_on: str | None = None


class SettingsIn(BaseModel):
    """Either part or both."""

    model_config = ConfigDict(extra="forbid")

    retrieval: RetrievalSettings | None = None
    schedule: ScheduleSettings | None = None


class SettingsOut(BaseModel):
    """The news module's settings."""

    retrieval: RetrievalSettings
    schedule: ScheduleOut
