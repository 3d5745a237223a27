"""REST routes of contact profiles (operators edit them) and their attributes (admins define)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from relaydesk.contacts.models import AttributeKind
from relaydesk.contacts.service import participant_number
from relaydesk.deps import Admin, Operator, SessionDep, Viewer, WriteSessionDep
from relaydesk.inbox import attributes, labels, profiles
from relaydesk.inbox.profile_schemas import AttributeOut, ProfileOut

router = APIRouter(tags=["inbox"])

Number = Annotated[
    StrictInt, Field(ge=-attributes.MAX_NUMBER, le=attributes.MAX_NUMBER, title="number")
]
Decimal = Annotated[
    StrictFloat,
    Field(
        ge=-attributes.MAX_NUMBER,
        le=attributes.MAX_NUMBER,
        allow_inf_nan=False,
        title="decimal number",
    ),
]
Text = Annotated[StrictStr, Field(max_length=attributes.MAX_TEXT, title="text, date or option")]
Key = Annotated[str, Field(max_length=attributes.MAX_KEY, pattern=attributes.KEY_PATTERN)]
# Aliases: in the models below, fields named `attributes` and `labels` hide the modules.
Values = dict[Key, Text | Number | Decimal | None]
LabelName = Annotated[str, Field(max_length=labels.MAX_NAME * 4)]
Option = Annotated[str, Field(max_length=attributes.MAX_OPTION)]
MAX_ATTRIBUTES = attributes.MAX_ATTRIBUTES
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No customer has this number"}}


class ProfilePatch(BaseModel):
    """PATCH /api/contacts/{participant}: what is given changes, what is left out stays."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        default=None,
        max_length=profiles.MAX_NAME,
        description='one line; null or "" goes back to the name the customer gave',
        examples=["Anna Kowalska"],
    )
    note: str | None = Field(
        default=None,
        max_length=profiles.MAX_NOTE,
        description='free text, line breaks allowed; null or "" clears it',
    )
    attributes: Values | None = Field(
        default=None,
        max_length=attributes.MAX_ATTRIBUTES,
        description="values by key, checked by the attribute's type (number; date "
        '"YYYY-MM-DD"; one of a list\'s options; text of one line); null or "" removes '
        "a value; keys left out keep theirs",
        examples=[{"city": "Kraków", "customer_since": "2024-05-01", "plan": "Gold"}],
    )
    labels: list[LabelName] | None = Field(
        default=None,
        max_length=labels.MAX_PER_CONVERSATION,
        description="exactly these label names (ignoring case) on the customer's "
        "conversations; [] takes every label off",
        examples=[["VIP"]],
    )


class AttributeIn(BaseModel):
    """One attribute's definition."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(
        min_length=1,
        max_length=attributes.MAX_KEY,
        description="lower-case letters, digits and _, starting with a letter; "
        "canned answers write {{contact.<key>}}",
        examples=["city"],
    )
    name: str = Field(min_length=1, max_length=attributes.MAX_NAME, examples=["City"])
    kind: AttributeKind = Field(description="text | number | date | list")
    options: list[Option] = Field(
        default_factory=list,
        max_length=attributes.MAX_OPTIONS,
        description="a list's choices (1 to 50); empty for the other types",
    )


class AttributesIn(BaseModel):
    """PUT /api/contact-attributes: every attribute, in the order to show them."""

    model_config = ConfigDict(extra="forbid")

    attributes: list[AttributeIn] = Field(max_length=MAX_ATTRIBUTES)


def _change(payload: ProfilePatch) -> profiles.ProfileChange:
    given = payload.model_fields_set
    values: dict[str, Any] | None = payload.attributes
    return profiles.ProfileChange(
        name=(payload.name or "") if "name" in given else None,
        note=(payload.note or "") if "note" in given else None,
        attributes=values if "attributes" in given and values is not None else None,
        labels=payload.labels if "labels" in given else None,
    )


@router.get("/api/contacts/{participant}", response_model=ProfileOut, responses=_NOT_FOUND)
def get_contact(participant: str, principal: Viewer, session: SessionDep) -> ProfileOut:
    """A customer's profile: name, note, attributes, labels, channels and consent on each,
    conversations, voice-bot calls and campaigns (the newest 10 of each, with totals)."""
    return profiles.read_profile(session, participant_number(participant))


@router.patch(
    "/api/contacts/{participant}",
    response_model=ProfileOut,
    responses={
        **_NOT_FOUND,
        422: {"description": "A bad value (named), an unknown attribute or label"},
    },
)
def update_contact(
    participant: str, payload: ProfilePatch, principal: Operator, session: WriteSessionDep
) -> ProfileOut:
    """Change a customer's name, note, attribute values or labels (audited; labels are an
    event in the thread). Everything is checked first: a refusal changes nothing."""
    number = participant_number(participant)
    return profiles.update_profile(session, number, _change(payload), principal)


@router.get("/api/contact-attributes", response_model=list[AttributeOut])
def list_attributes(principal: Viewer, session: SessionDep) -> list[AttributeOut]:
    """The custom attributes every contact profile has, in order."""
    return [AttributeOut.model_validate(row) for row in attributes.list_definitions(session)]


@router.put(
    "/api/contact-attributes",
    response_model=list[AttributeOut],
    responses={422: {"description": "A bad key, name, type or options, or a key given twice"}},
)
def replace_attributes(
    payload: AttributesIn, principal: Admin, session: WriteSessionDep
) -> list[AttributeOut]:
    """Make the attributes exactly these, in this order (audited). A key left out is
    removed: its values stay stored but hidden, and come back if the key is defined again."""
    wanted = [
        attributes.Definition(item.key, item.name, item.kind.value, item.options)
        for item in payload.attributes
    ]
    rows = attributes.replace(session, wanted, principal.actor)
    return [AttributeOut.model_validate(row) for row in rows]
