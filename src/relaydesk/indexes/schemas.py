"""API shapes of the knowledge indexes: the list, backups, the status card and questions."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from relaydesk.indexes.service import MAX_TOP_K


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
