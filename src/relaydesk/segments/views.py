"""Panel page of segments and contacts as CSV: the Contacts tab.

Segments: the saved ones with their live counts, and a rules form whose count follows
the form as it changes (htmx, debounced). Import: upload a file, read its preview, confirm;
the confirmation sends the same file with the preview's fingerprint, so what is stored is
what was shown. Export: a link to GET /api/contacts.csv.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from relaydesk.auth.sessions import SignedIn
from relaydesk.core.db import session_scope
from relaydesk.core.errors import Invalid
from relaydesk.core.i18n import N_
from relaydesk.deps import Id
from relaydesk.inbox import attributes, labels
from relaydesk.segments import contacts_csv, service
from relaydesk.segments.models import Segment
from relaydesk.segments.schemas import MAX_ATTRIBUTE_RULES, Rules
from relaydesk.web.deps import PanelOperator, PanelViewer
from relaydesk.web.forms import form_problem
from relaydesk.web.templating import render

router = APIRouter(include_in_schema=False)

ATTRIBUTE_ROWS = 3  # attribute rules the form offers
STATUSES = ("open", "pending", "snoozed", "resolved")

Text = Annotated[str, Form(max_length=200)]
Ids = Annotated[list[int] | None, Form(max_length=50)]
Words = Annotated[list[str] | None, Form(max_length=MAX_ATTRIBUTE_RULES)]
Upload = Annotated[UploadFile, File()]


def rules_from_form(
    channel: Text = "",
    opted_in_only: Text = "",
    labels_any: Ids = None,
    labels_all: Ids = None,
    labels_none: Ids = None,
    attr_key: Words = None,
    attr_op: Words = None,
    attr_value: Words = None,
    within_days: Text = "",
    status: Words = None,
) -> Rules:
    """The rules a filled-in form means (empty rows and fields are no rule); the live
    count, creating and editing a segment read the same form through `FormRules`."""
    label_rules = [
        {"match": match, "label_ids": ids}
        for match, ids in (("any", labels_any), ("all", labels_all), ("none", labels_none))
        if ids
    ]
    attribute_rules = []
    for key, op, value in zip(attr_key or [], attr_op or [], attr_value or [], strict=False):
        if not key.strip():
            continue
        if op == "one_of":
            attribute_rules.append(
                {"key": key, "op": op, "values": [v.strip() for v in value.split("|") if v]}
            )
        else:
            attribute_rules.append({"key": key, "op": op, "value": value})
    days = within_days.strip()
    if days and not days.isdigit():
        raise Invalid(
            N_("Wrote within: give a whole number of days"), params={}, field="within_days"
        )
    try:
        return Rules.model_validate(
            {
                "channel": channel or None,
                "opted_in_only": bool(opted_in_only),
                "labels": label_rules,
                "attributes": attribute_rules,
                "last_inbound_within_days": int(days[:6]) if days else None,
                "conversation_status": status or [],
            }
        )
    except ValidationError as exc:
        raise form_problem(exc) from None


FormRules = Annotated[Rules, Depends(rules_from_form)]


def _editor(session: Session, segment: Segment | None = None) -> dict[str, Any]:
    """What the rules form shows: a new segment's defaults, or a saved one's rules."""
    rules = Rules.model_validate(segment.rules) if segment else Rules(opted_in_only=True)
    picked: dict[str, list[int]] = {"labels_any": [], "labels_all": [], "labels_none": []}
    for rule in rules.labels:
        picked[f"labels_{rule.match}"].extend(rule.label_ids)
    rows: list[dict[str, Any]] = [
        {
            "key": rule.key,
            "op": rule.op,
            "value": "|".join(rule.values) if rule.op == "one_of" else rule.value,
        }
        for rule in rules.attributes
    ]
    rows += [{"key": "", "op": "equals", "value": ""}] * max(0, ATTRIBUTE_ROWS - len(rows))
    return {
        "editing": {"id": segment.id, "name": segment.name} if segment else None,
        "rules": rules,
        "picked": picked,
        "attribute_rules": rows,
        "count": service.count(session, rules),
        "label_choices": [label for label, _ in labels.list_labels(session)],
        "attribute_choices": attributes.list_definitions(session),
        "statuses": STATUSES,
    }


def _saved(session: Session) -> list[dict[str, Any]]:
    """The saved segments; each row loads its count by itself (a count can take 0.1 s)."""
    return [{"id": s.id, "name": s.name} for s in service.list_segments(session)]


def _list(request: Request, user: SignedIn, **extra: Any) -> Response:
    """The list again, with a fresh (new segment) form out of band."""
    with session_scope(write=False) as session:
        context = {"saved": _saved(session), "editor": True, **_editor(session), **extra}
    return render(request, "segments/_list.html", context, user=user)


@router.get("/contacts", response_class=HTMLResponse)
def contacts_page(request: Request, user: PanelViewer) -> Response:
    """The Contacts tab: segments with their counts and rules, and contacts as CSV."""
    with session_scope(write=False) as session:
        context = {"tab": "contacts", "saved": _saved(session), **_editor(session)}
    return render(request, "segments/index.html", context, user=user)


@router.post("/contacts/segments/count", response_class=HTMLResponse)
def segment_count(
    request: Request,
    user: PanelViewer,
    rules: FormRules,
) -> Response:
    """The live count under the rules form (what the form means now, nothing saved)."""
    with session_scope(write=False) as session:
        count = service.count(session, rules)
    return render(request, "segments/_count.html", {"count": count}, user=user)


@router.post("/contacts/segments", response_class=HTMLResponse)
def segment_create(
    request: Request,
    user: PanelOperator,
    rules: FormRules,
    name: Text = "",
) -> Response:
    """Save the form's rules as a segment; the list again."""
    with session_scope() as session:
        segment = service.create(session, name, rules, user.actor)
        created = segment.name
    return _list(request, user, created=created)


@router.get("/contacts/segments/{segment_id}/count", response_class=HTMLResponse)
def saved_count(request: Request, segment_id: Id, user: PanelViewer) -> Response:
    """A saved segment's live count, in its row of the list."""
    with session_scope(write=False) as session:
        segment = service.get(session, segment_id)
        count = service.count(session, Rules.model_validate(segment.rules))
    return render(request, "segments/_saved_count.html", {"count": count}, user=user)


@router.get("/contacts/segments/new", response_class=HTMLResponse)
def segment_new(request: Request, user: PanelOperator) -> Response:
    """An empty rules form (leaving an edit)."""
    with session_scope(write=False) as session:
        context = _editor(session)
    return render(request, "segments/_editor.html", context, user=user)


@router.get("/contacts/segments/{segment_id}/edit", response_class=HTMLResponse)
def segment_edit(request: Request, segment_id: Id, user: PanelOperator) -> Response:
    """The rules form filled with a saved segment's name and rules."""
    with session_scope(write=False) as session:
        context = _editor(session, service.get(session, segment_id))
    return render(request, "segments/_editor.html", context, user=user)


@router.post("/contacts/segments/{segment_id}", response_class=HTMLResponse)
def segment_update(
    request: Request,
    segment_id: Id,
    user: PanelOperator,
    rules: FormRules,
    name: Text = "",
) -> Response:
    """Save the edited name and rules; campaigns already made keep their recipients."""
    with session_scope() as session:
        saved = service.update(session, segment_id, name, rules, user.actor).name
    return _list(request, user, created=saved)


@router.post("/contacts/segments/{segment_id}/delete", response_class=HTMLResponse)
def segment_delete(request: Request, segment_id: Id, user: PanelOperator) -> Response:
    """Delete a segment (asked to confirm first); campaigns made from it stay as they are."""
    with session_scope() as session:
        service.delete(session, segment_id, user.actor)
    return _list(request, user)


@router.post("/contacts/import/preview", response_class=HTMLResponse)
def import_preview(request: Request, user: PanelOperator, file: Upload) -> Response:
    """What the chosen file would import, with the button that confirms it."""
    data = file.file.read(contacts_csv.MAX_BYTES + 1)
    with session_scope(write=False) as session:
        preview = contacts_csv.preview(session, data)
    return render(request, "segments/_import_preview.html", {"preview": preview}, user=user)


@router.post("/contacts/import", response_class=HTMLResponse)
def import_confirm(
    request: Request,
    user: PanelOperator,
    file: Upload,
    previewed: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Import the previewed file (refused if the chosen file changed since the preview)."""
    data = file.file.read(contacts_csv.MAX_BYTES + 1)
    with session_scope() as session:
        result = contacts_csv.apply(session, data, user.principal, previewed or None)
    return render(request, "segments/_import_done.html", {"result": result}, user=user)
