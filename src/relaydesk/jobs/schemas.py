"""API shapes of jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel


class JobOut(BaseModel):
    """A job and its progress."""

    id: int
    kind: str
    status: Literal["queued", "running", "done", "failed"]
    done: int
    total: int
    percent: float | None
    message: str | None
    result: dict[str, Any] | None
    error: str | None
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
