"""API shapes of the news module: sources, jobs, files, indexes, retrieval and settings."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from relaydesk.news.service import MAX_TOP_K
from relaydesk.news.sources import MAX_URL_LENGTH


class SourceIn(BaseModel):
    """A feed or section page for a category (the category is created on first use)."""

    model_config = ConfigDict(extra="forbid")

    category: str = Field(..., min_length=1, max_length=100)
    url: str = Field(..., min_length=1, max_length=MAX_URL_LENGTH)
    kind: Literal["feed", "page"] = "feed"


class SourceOut(BaseModel):
    """One source."""

    id: int
    category: str
    label: str
    url: str
    kind: str
    created_at: datetime


class CategoryOut(BaseModel):
    """A category with its sources."""

    category: str
    label: str
    sources: list[SourceOut]


class ScrapeIn(BaseModel):
    """Which categories to scrape (all when omitted)."""

    model_config = ConfigDict(extra="forbid")

    categories: list[str] | None = Field(None, max_length=200)


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


class IndexOut(BaseModel):
    """A knowledge index."""

    name: str
    active: bool
    vectors: int
    documents: int
    embedding_provider: str | None
    embedding_model: str | None
    dimension: int | None
    created_at: str | None
    updated_at: str | None
    size_bytes: int
    problem: str | None


class ImportOut(BaseModel):
    """An imported index."""

    name: str
    vectors: int
    documents: int
    embedding_model: str
    dimension: int
    active: bool


class StatusOut(BaseModel):
    """The active index at a glance."""

    loaded: bool
    vectors: int
    embedding_model: str | None
    chat_model: str
    last_build: str | None
    backup_ready: bool
    active_index: str | None
    problem: str | None


class TestIn(BaseModel):
    """A question for the active index."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(..., min_length=1, max_length=2000)
    mode: Literal["answer", "all_categories"] = "answer"
    top_k: int | None = Field(None, ge=1, le=MAX_TOP_K)
    min_score: float | None = Field(None, ge=0, le=1)


class SourceUsed(BaseModel):
    """A passage an answer is based on."""

    title: str
    url: str
    category: str
    score: float
    excerpt: str


class TestOut(BaseModel):
    """The model's answer (null without a usable model) and the passages behind it."""

    answer: str | None
    sources: list[SourceUsed]
    model: str | None
    note: str | None


class RetrievalSettings(BaseModel):
    """Passages per question and the lowest similarity kept."""

    model_config = ConfigDict(extra="forbid")

    top_k: int = Field(5, ge=1, le=MAX_TOP_K)
    min_score: float = Field(0.25, ge=0, le=1)


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
