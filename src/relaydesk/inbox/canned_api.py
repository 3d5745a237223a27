"""REST routes for canned answers: list and search, manage, render for a customer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, computed_field

from relaydesk.contacts.service import participant_number
from relaydesk.deps import Id, Operator, SessionDep, Viewer, WriteSessionDep
from relaydesk.inbox import canned
from relaydesk.inbox.models import CannedResponse

router = APIRouter(tags=["inbox"])


class CannedIn(BaseModel):
    """POST /api/canned-responses."""

    model_config = ConfigDict(extra="forbid")

    shortcut: str = Field(
        min_length=1,
        max_length=canned.SHORTCUT_MAX,
        description="letters, digits, - and _ (stored lower-case); typed after / in the composer",
        examples=["hours"],
    )
    body: str = Field(
        min_length=1,
        max_length=canned.BODY_MAX,
        description="the text; may use {{contact.name}}, {{contact.phone}}, {{agent.name}}",
        examples=["Hello {{contact.name}}, we are open 9:00-17:00. {{agent.name}}"],
    )
    shared: bool = Field(
        default=False, description="true: for everyone (administrators); false: your own"
    )


class CannedPatch(BaseModel):
    """PATCH /api/canned-responses/{id}: fields left out (or null) stay as they are."""

    model_config = ConfigDict(extra="forbid")

    shortcut: str | None = Field(default=None, min_length=1, max_length=canned.SHORTCUT_MAX)
    body: str | None = Field(default=None, min_length=1, max_length=canned.BODY_MAX)


class CannedOut(BaseModel):
    """A canned answer; `shared` ones are everyone's, the others the caller's own."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    shortcut: str
    body: str
    owner_id: int | None
    created_at: datetime
    updated_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def shared(self) -> bool:
        """Shared with everyone (no owner)."""
        return self.owner_id is None


class RenderIn(BaseModel):
    """POST /api/canned-responses/{id}/render."""

    model_config = ConfigDict(extra="forbid")

    participant: str = Field(
        min_length=1, max_length=64, description="the customer's number", examples=["+48600100200"]
    )


class RenderedOut(BaseModel):
    """An answer filled in for one customer, and what sending it costs."""

    model_config = ConfigDict(from_attributes=True)

    text: str
    segments: int = Field(description="SMS segments the text takes (0 when it is empty)")
    encoding: str = Field(description="GSM-7 or UCS-2")
    missing: list[str] = Field(
        description="variables with no value for this customer (left empty) and unknown "
        "ones (left as written)"
    )


@router.get("/api/canned-responses", response_model=list[CannedOut])
def list_canned(
    principal: Viewer,
    session: SessionDep,
    q: Annotated[
        str | None,
        Query(max_length=100, description="part of the shortcut or the text (a leading / is ok)"),
    ] = None,
) -> list[CannedResponse]:
    """The shared canned answers and the caller's own, at most 50.

    With `q`: those whose shortcut or text contains it (any case), the shortcuts that
    start with it first; otherwise in shortcut order.
    """
    return canned.search(session, principal.user_id, q)


@router.post(
    "/api/canned-responses",
    status_code=201,
    response_model=CannedOut,
    responses={
        403: {"description": "shared: true needs an administrator"},
        409: {"description": "The shortcut clashes with one its users see, or too many answers"},
        422: {
            "description": "A bad shortcut or text, or a personal answer for a token that "
            "acts as nobody"
        },
    },
)
def create_canned(
    payload: CannedIn, principal: Operator, session: WriteSessionDep
) -> CannedResponse:
    """Make a canned answer: your own, or with `shared: true` one for everyone (admins).

    A shortcut is unique among what its users see: a personal answer may not take a
    shared one's shortcut, nor a shared one a personal one's (409). Audited.
    """
    return canned.create(session, principal, payload.shortcut, payload.body, payload.shared)


@router.patch(
    "/api/canned-responses/{canned_id}",
    response_model=CannedOut,
    responses={
        403: {"description": "A shared answer, and the caller is not an administrator"},
        404: {"description": "No such answer, or someone else's own"},
        409: {"description": "The new shortcut clashes with one its users see"},
        422: {"description": "A bad shortcut or text"},
    },
)
def change_canned(
    canned_id: Id, payload: CannedPatch, principal: Operator, session: WriteSessionDep
) -> CannedResponse:
    """Change your own answer's shortcut or text (administrators: a shared one's). Audited."""
    return canned.update(session, canned_id, principal, payload.shortcut, payload.body)


@router.delete(
    "/api/canned-responses/{canned_id}",
    status_code=204,
    responses={
        403: {"description": "A shared answer, and the caller is not an administrator"},
        404: {"description": "No such answer, or someone else's own"},
    },
)
def delete_canned(canned_id: Id, principal: Operator, session: WriteSessionDep) -> Response:
    """Delete your own answer (administrators: a shared one). Audited."""
    canned.delete(session, canned_id, principal)
    return Response(status_code=204)


@router.post(
    "/api/canned-responses/{canned_id}/render",
    response_model=RenderedOut,
    responses={
        404: {"description": "No such answer, or someone else's own"},
        422: {"description": "The participant is not a phone number"},
    },
)
def render_canned(
    canned_id: Id, payload: RenderIn, principal: Operator, session: SessionDep
) -> canned.Rendered:
    """An answer filled in for a customer, with its SMS segments; sends nothing.

    `{{contact.name}}` is the customer's profile name, `{{contact.phone}}` their number,
    `{{agent.name}}` the caller's name (spaces inside the braces are fine). One with no
    value is left empty, an unknown one as written; both are listed in `missing`.
    """
    number = participant_number(payload.participant)
    return canned.render(session, canned_id, number, principal)
