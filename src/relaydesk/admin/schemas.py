"""API shapes of the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditEntryOut(BaseModel):
    """Who changed what, when."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    details: dict[str, Any] | None


class AuditPage(BaseModel):
    """One page of the audit log, newest first; `next` fetches the older entries."""

    items: list[AuditEntryOut]
    next: str | None
