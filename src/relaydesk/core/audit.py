"""The audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relaydesk.core.db import utcnow
from relaydesk.core.models import AuditEntry
from relaydesk.core.pagination import cursor_id, encode_cursor


def record(
    session: Session,
    actor: str,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one entry; never put secrets in `details`."""
    session.add(AuditEntry(at=utcnow(), actor=actor, action=action, target=target, details=details))


def list_audit(
    session: Session,
    *,
    limit: int = 50,
    cursor: str | None = None,
    action: str | None = None,
    actor: str | None = None,
) -> tuple[list[AuditEntry], str | None]:
    """A page of the audit log, newest first; `action` matches as a prefix ("user.")."""
    query = select(AuditEntry)
    if action:
        query = query.where(AuditEntry.action.startswith(action, autoescape=True))
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if cursor:
        query = query.where(AuditEntry.id < cursor_id(cursor))
    rows = session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit + 1)).all()
    nxt = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return list(rows[:limit]), nxt
