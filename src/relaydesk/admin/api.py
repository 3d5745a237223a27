"""REST route for reading the audit log (administrators only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from relaydesk.admin.schemas import AuditPage
from relaydesk.core import audit
from relaydesk.deps import Admin, SessionDep

router = APIRouter(tags=["audit"])


@router.get("/api/audit", response_model=AuditPage)
def list_audit(
    principal: Admin,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    actor: Annotated[str | None, Query(max_length=100)] = None,
) -> AuditPage:
    """The audit log, newest first; `action` matches as a prefix (`user.`)."""
    items, nxt = audit.list_audit(session, limit=limit, cursor=cursor, action=action, actor=actor)
    return AuditPage(items=items, next=nxt)
