"""REST routes of automatic assignment: round-robin among the operators online (admins)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from relaydesk.deps import Admin, SessionDep, Viewer, WriteSessionDep
from relaydesk.messaging import assignment

router = APIRouter(tags=["inbox"])


class AssignmentOut(BaseModel):
    """How conversations without an owner get one, and who would get the next."""

    round_robin: bool = Field(
        description="a customer who writes and has no owner goes to the next operator "
        "online in the panel (never a locked user or a viewer)"
    )
    online: list[str] = Field(description="operators and admins online now, next turn first")


class AssignmentIn(BaseModel):
    """PUT /api/assignment."""

    model_config = ConfigDict(extra="forbid")

    round_robin: bool


def _out(session: Session) -> AssignmentOut:
    config = assignment.read_config(session)
    people = assignment.online_operators(session)
    return AssignmentOut(round_robin=config.round_robin, online=[p.display_name for p in people])


@router.get("/api/assignment", response_model=AssignmentOut)
def read_assignment(principal: Viewer, session: SessionDep) -> AssignmentOut:
    """Whether round-robin is on, and the operators it would choose from now."""
    return _out(session)


@router.put("/api/assignment", response_model=AssignmentOut)
def update_assignment(
    payload: AssignmentIn, principal: Admin, session: WriteSessionDep
) -> AssignmentOut:
    """Switch round-robin on or off (admins)."""
    assignment.save_config(
        session, assignment.AssignmentConfig(round_robin=payload.round_robin), principal.actor
    )
    return _out(session)
