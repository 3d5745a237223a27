"""The customer's profile beside the inbox's thread, and the admins' attribute definitions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from relaydesk.contacts.models import AttributeKind, ContactAttribute
from relaydesk.contacts.service import participant_number
from relaydesk.core.db import session_scope
from relaydesk.core.errors import NotFound
from relaydesk.core.i18n import N_
from relaydesk.deps import Id
from relaydesk.inbox import attributes, labels, profiles
from relaydesk.messaging.views import CHANGED
from relaydesk.web.deps import PanelAdmin, PanelOperator, PanelViewer
from relaydesk.web.templating import render

router = APIRouter(include_in_schema=False)

ATTRIBUTE_FIELD = "attr."  # the edit form's field of attribute `city` is "attr.city"
Key = Annotated[str, Form(max_length=attributes.MAX_KEY * 2)]
Name = Annotated[str, Form(max_length=attributes.MAX_NAME * 4)]
Kind = Annotated[str, Form(max_length=10)]
Options = Annotated[str, Form(max_length=attributes.MAX_OPTIONS * (attributes.MAX_OPTION + 2))]


async def _read_form(request: Request) -> FormData:
    return await request.form()


# The whole form: the attribute fields are named after keys an admin chose.
FormDep = Annotated[FormData, Depends(_read_form)]


def profile_context(number: str, missing_ok: bool = True) -> dict[str, Any]:
    """The profile of the customer at `number` for the panel, with their labels' colours.

    A number with no contact has no profile: None, or NotFound unless `missing_ok`.
    """
    with session_scope(write=False) as session:
        try:
            profile = profiles.read_profile(session, number)
        except NotFound:
            if not missing_ok:
                raise
            profile = None
        chips = [
            {"name": label.name, "colour": label.colour}
            for label in labels.labels_on(session, number)
        ]
    return {"participant": number, "profile": profile, "profile_labels": chips}


@router.get("/inbox/{participant}/profile", response_class=HTMLResponse)
def show_profile(request: Request, participant: str, user: PanelViewer) -> Response:
    """The profile beside the thread (reloaded live)."""
    context = profile_context(participant_number(participant))
    return render(request, "inbox/_profile.html", context, user=user)


@router.get("/inbox/{participant}/profile/edit", response_class=HTMLResponse)
def edit_profile(request: Request, participant: str, user: PanelOperator) -> Response:
    """The profile as a form: name, attribute values by type, note."""
    context = profile_context(participant_number(participant), missing_ok=False)
    return render(request, "inbox/_profile_form.html", context, user=user)


@router.post("/inbox/{participant}/profile", response_class=HTMLResponse)
def save_profile(
    request: Request, participant: str, user: PanelOperator, form: FormDep
) -> Response:
    """Save the form; the profile again, and the pane's title and the list reload."""
    number = participant_number(participant)
    values = {
        name.removeprefix(ATTRIBUTE_FIELD): str(value)
        for name, value in form.multi_items()
        if name.startswith(ATTRIBUTE_FIELD)
    }
    # A field the form did not send stays as it is (an empty one clears it).
    change = profiles.ProfileChange(
        name=str(form["name"]) if "name" in form else None,
        note=str(form["note"]) if "note" in form else None,
        attributes=values,
    )
    with session_scope() as session:
        profiles.update_profile(session, number, change, user.principal)
    context = {**profile_context(number), "saved": True}
    return render(
        request, "inbox/_profile.html", context, headers={"HX-Trigger": CHANGED}, user=user
    )


# --- the admins' attribute definitions ---------------------------------------------------


def _definitions(rows: list[ContactAttribute]) -> list[attributes.Definition]:
    return [attributes.Definition(r.key, r.name, r.kind.value, list(r.options)) for r in rows]


def _options(kind: str, text: str) -> list[str]:
    """A list's options, one a line; the other types have none (the field is ignored)."""
    return text.splitlines() if kind == AttributeKind.LIST.value else []


def _manage(request: Request, user: Any, page: bool = False) -> Response:
    with session_scope(write=False) as session:
        rows = attributes.list_definitions(session)
    context = {
        "attribute_rows": rows,
        "kinds": [kind.value for kind in AttributeKind],
        "limits": {"key": attributes.MAX_KEY, "name": attributes.MAX_NAME},
        "tab": "inbox",
    }
    template = "inbox/attributes.html" if page else "inbox/_manage_attributes.html"
    return render(request, template, context, user=user)


# Gets the definitions now (in order) and the attribute's place among them.
Change = Callable[[list[attributes.Definition], int], list[attributes.Definition]]


def _replace(user: Any, attribute_id: int | None, change: Change) -> None:
    """Apply `change` to the current definitions and save them all (one replace)."""
    with session_scope() as session:
        rows = attributes.list_definitions(session)
        at = next((n for n, row in enumerate(rows) if row.id == attribute_id), -1)
        if attribute_id is not None and at < 0:
            raise NotFound(
                N_("Contact attribute %(id)s does not exist"), params={"id": attribute_id}
            )
        attributes.replace(session, change(_definitions(rows), at), user.actor)


@router.get("/inbox/attributes", response_class=HTMLResponse)
def attributes_page(request: Request, user: PanelAdmin) -> Response:
    """The contact attributes every profile has: add, rename, retype, reorder, remove."""
    return _manage(request, user, page=True)


@router.post("/inbox/attributes", response_class=HTMLResponse)
def add_attribute(
    request: Request,
    user: PanelAdmin,
    key: Key = "",
    name: Name = "",
    kind: Kind = "text",
    options: Options = "",
) -> Response:
    """A new attribute, last in the order."""
    new = attributes.Definition(key.strip().lower(), name, kind, _options(kind, options))
    _replace(user, None, lambda current, _: [*current, new])
    return _manage(request, user)


@router.post("/inbox/attributes/{attribute_id}", response_class=HTMLResponse)
def update_attribute(
    request: Request,
    attribute_id: Id,
    user: PanelAdmin,
    name: Name = "",
    kind: Kind = "text",
    options: Options = "",
) -> Response:
    """Rename an attribute, change its type or its options (its key stays)."""

    def change(current: list[attributes.Definition], at: int) -> list[attributes.Definition]:
        current[at] = attributes.Definition(current[at].key, name, kind, _options(kind, options))
        return current

    _replace(user, attribute_id, change)
    return _manage(request, user)


@router.post("/inbox/attributes/{attribute_id}/move", response_class=HTMLResponse)
def move_attribute(
    request: Request,
    attribute_id: Id,
    user: PanelAdmin,
    direction: Annotated[str, Form(pattern="^(up|down)$")] = "up",
) -> Response:
    """Move an attribute one place up or down."""

    def change(current: list[attributes.Definition], at: int) -> list[attributes.Definition]:
        to = at - 1 if direction == "up" else at + 1
        if 0 <= to < len(current):
            current[at], current[to] = current[to], current[at]
        return current

    _replace(user, attribute_id, change)
    return _manage(request, user)


@router.post("/inbox/attributes/{attribute_id}/delete", response_class=HTMLResponse)
def delete_attribute(request: Request, attribute_id: Id, user: PanelAdmin) -> Response:
    """Remove an attribute (asked to confirm first); stored values stay, hidden."""

    def change(current: list[attributes.Definition], at: int) -> list[attributes.Definition]:
        del current[at]
        return current

    _replace(user, attribute_id, change)
    return _manage(request, user)
