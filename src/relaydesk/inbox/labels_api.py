"""REST routes of labels: the list (admins keep it) and a conversation's labels (operators)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from relaydesk.contacts.service import participant_number
from relaydesk.deps import Admin, Id, Operator, SessionDep, Viewer, WriteSessionDep
from relaydesk.inbox import labels
from relaydesk.messaging.models import Label

router = APIRouter(tags=["inbox"])

# Room for surrounding spaces; the service holds names to labels.MAX_NAME characters.
_NAME_INPUT = 200
Colour = Annotated[
    str,
    Field(
        min_length=7,
        max_length=7,
        pattern="^#[0-9a-fA-F]{6}$",
        description='"#rrggbb"',
        examples=["#1f77b4"],
    ),
]


class LabelRef(BaseModel):
    """A label as a conversation shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    colour: str = Field(description='"#rrggbb"')


class LabelOut(LabelRef):
    """A label, with how many customers' conversations carry it."""

    conversations: int = Field(description="how many customers' conversations carry it")


class LabelIn(BaseModel):
    """POST /api/labels."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=_NAME_INPUT,
        description=f"one line, at most {labels.MAX_NAME} characters, unique ignoring case",
        examples=["VIP"],
    )
    colour: Colour | None = Field(
        default=None, description='"#rrggbb"; left out: a colour of a small palette'
    )


class LabelPatch(BaseModel):
    """PATCH /api/labels/{id}: what is given (not null) changes."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=_NAME_INPUT)
    colour: Colour | None = None


class ConversationLabelsIn(BaseModel):
    """PUT /api/conversations/{participant}/labels: the labels the conversation carries."""

    model_config = ConfigDict(extra="forbid")

    labels: list[Annotated[str, Field(max_length=_NAME_INPUT)]] = Field(
        max_length=labels.MAX_PER_CONVERSATION,
        description=f"label names (ignoring case), at most {labels.MAX_PER_CONVERSATION}; "
        "[] takes every label off",
        examples=[["VIP", "invoice"]],
    )


class ConversationLabelsOut(BaseModel):
    """The labels on a customer's conversation now, by name."""

    participant: str
    labels: list[LabelRef]


_ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No label has this id"},
    409: {"description": "Another label has this name (ignoring case)"},
    422: {"description": "A name that is empty, too long or not one line, or a bad colour"},
}


def _out(session: Session, label: Label, count: int | None = None) -> LabelOut:
    used = labels.usage(session, label.id) if count is None else count
    return LabelOut(id=label.id, name=label.name, colour=label.colour, conversations=used)


@router.get("/api/labels", response_model=list[LabelOut])
def list_labels(principal: Viewer, session: SessionDep) -> list[LabelOut]:
    """Every label by name, with how many customers' conversations carry it.

    Filter the conversations by one with `GET /api/conversations?label=<name>`.
    """
    return [_out(session, label, count) for label, count in labels.list_labels(session)]


@router.post("/api/labels", response_model=LabelOut, status_code=201, responses=_ADMIN_ERRORS)
def create_label(payload: LabelIn, principal: Admin, session: WriteSessionDep) -> LabelOut:
    """Add a label operators can put on conversations (audited)."""
    label = labels.create_label(session, payload.name, payload.colour, principal.actor)
    return _out(session, label, 0)


@router.patch("/api/labels/{label_id}", response_model=LabelOut, responses=_ADMIN_ERRORS)
def update_label(
    label_id: Id, payload: LabelPatch, principal: Admin, session: WriteSessionDep
) -> LabelOut:
    """Rename or recolour a label (audited); conversations keep it under its new name."""
    label = labels.update_label(session, label_id, payload.name, payload.colour, principal.actor)
    return _out(session, label)


@router.delete(
    "/api/labels/{label_id}",
    status_code=204,
    responses={404: {"description": "No label has this id"}},
)
def delete_label(label_id: Id, principal: Admin, session: WriteSessionDep) -> Response:
    """Delete a label: it comes off every conversation (an event in each thread; audited)."""
    labels.delete_label(session, label_id, principal)
    return Response(status_code=204)


@router.put(
    "/api/conversations/{participant}/labels",
    response_model=ConversationLabelsOut,
    responses={
        404: {"description": "No conversation with this number"},
        422: {"description": "A bad number, an unknown label (named), or too many labels"},
    },
)
def set_conversation_labels(
    participant: str, payload: ConversationLabelsIn, principal: Operator, session: WriteSessionDep
) -> ConversationLabelsOut:
    """Put exactly these labels on a customer's conversation (every channel of theirs).

    Names match ignoring case. A change is an event in the thread (`kind` labels, `data`
    `{added, removed}`) and an entry in the audit log; the answer lists the labels now on.
    """
    number = participant_number(participant)
    now_on = labels.set_labels(session, number, payload.labels, principal)
    return ConversationLabelsOut(
        participant=number, labels=[LabelRef.model_validate(label) for label in now_on]
    )
