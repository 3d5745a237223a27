"""The audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from relaydesk.admin.models import AuditEntry
from relaydesk.db import utcnow


def record(
    session: Session,
    actor: str,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one entry; never put secrets in `details`."""
    session.add(AuditEntry(at=utcnow(), actor=actor, action=action, target=target, details=details))
