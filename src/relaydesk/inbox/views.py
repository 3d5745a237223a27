"""The team inbox (issue 19): conversations by state and owner, one open beside the list."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from relaydesk.auth import service as auth
from relaydesk.auth.models import ROLE_RANK
from relaydesk.auth.sessions import SignedIn
from relaydesk.contacts.models import Contact
from relaydesk.contacts.service import participant_number
from relaydesk.core.db import session_scope
from relaydesk.core.errors import Invalid, NotFound
from relaydesk.core.i18n import N_
from relaydesk.inbox import labels, notes, profiles
from relaydesk.messaging import queries, service, states
from relaydesk.messaging.models import Conversation, ConversationStatus, Priority
from relaydesk.messaging.views import CHANGED, chat_context
from relaydesk.web.deps import PanelOperator, PanelViewer
from relaydesk.web.forms import form_datetime
from relaydesk.web.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
OWNERS = ("all", "mine", "unassigned")
DEFAULT_OWNER, DEFAULT_STATUS = "all", ConversationStatus.OPEN.value

Owner = Annotated[str, Query(pattern="^(all|mine|unassigned)$")]
State = Annotated[str, Query(pattern="^(open|pending|snoozed|resolved)$")]
Text = Annotated[str | None, Query(max_length=200)]
LabelName = Annotated[str | None, Query(max_length=labels.MAX_NAME * 2)]
Field = Annotated[str | None, Form(max_length=40)]
E = TypeVar("E", bound=StrEnum)


def _query(owner: str, status: str, label: str | None = None, **more: str | None) -> str:
    """The inbox's URL query: the filters that differ from the defaults, then `more`."""
    values = {
        "owner": owner if owner != DEFAULT_OWNER else None,
        "status": status if status != DEFAULT_STATUS else None,
        "label": label or None,
        **more,
    }
    return urlencode({key: value for key, value in values.items() if value})


def _assignee(owner: str, user: SignedIn) -> int | Literal["none"] | None:
    """The list's owner filter as the query wants it."""
    if owner == "mine":
        return user.user_id
    return "none" if owner == "unassigned" else None


def _list_context(
    user: SignedIn,
    owner: str,
    status: str,
    label: str | None,
    cursor: str | None,
    current: str | None,
) -> dict[str, Any]:
    label = " ".join(label.split()) if label else None
    with session_scope(write=False) as session:
        items, nxt = queries.list_conversations(
            session,
            limit=PAGE_SIZE,
            cursor=cursor or None,
            status=ConversationStatus(status),
            assignee=_assignee(owner, user),
            user_id=user.user_id,
            label=label,
        )
        known = [row for row, _ in labels.list_labels(session)]
        # A name the team wrote in the profile wins over the one the customer gave.
        edited = profiles.edited_names(session, [item["participant"] for item in items])
    for item in items:
        item["profile_name"] = edited.get(item["participant"]) or item["profile_name"]
    base = _query(owner, status, label)
    return {
        "conversations": items,
        "owner": owner,
        "status": status,
        "label": label or "",
        # Every label, for the filter and the rows' chips (the rows carry names only).
        "all_labels": known,
        "label_colours": {row.name: row.colour for row in known},
        "owner_links": [(o, "/inbox?" + _query(o, status, label, c=current)) for o in OWNERS],
        "status_links": [
            (s.value, "/inbox?" + _query(owner, s.value, label, c=current))
            for s in ConversationStatus
        ],
        "current": current,
        "list_query": base,
        "list_url": "/inbox/list" + (f"?{base}" if base else ""),
        "more_url": "/inbox/list?" + _query(owner, status, label, cursor=nxt) if nxt else None,
    }


def _first(session: Session, number: str) -> tuple[Conversation, str | None]:
    """The customer's first conversation row (its state is theirs) and their name."""
    found = session.execute(
        select(Conversation, Contact.profile_name)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(Conversation.participant == number)
        .order_by(Conversation.id)
        .limit(1)
    ).first()
    if found is None:
        raise NotFound(N_("No conversation with %(participant)s"), params={"participant": number})
    return found[0], found[1]


def state_context(number: str) -> dict[str, Any]:
    """The state bar: status, snooze, owner, priority and who can be given the conversation."""
    with session_scope(write=False) as session:
        first, name = _first(session, number)
        people = [
            {"id": u.id, "name": u.display_name}
            for u in auth.list_users(session)
            if u.is_active and ROLE_RANK.get(u.role, 0) >= ROLE_RANK["operator"]
        ]
        owner = states.user_name(session, first.assignee_id)
        on = {row.id for row in labels.labels_on(session, number)}
        choices = [
            {"name": row.name, "colour": row.colour, "on": row.id in on}
            for row, _ in labels.list_labels(session)
        ]
    if first.assignee_id is not None and all(p["id"] != first.assignee_id for p in people):
        people.append({"id": first.assignee_id, "name": owner or "?"})  # locked since
    return {
        "participant": number,
        "customer": name,
        "state": {
            "status": first.status.value,
            "snoozed_until": first.snoozed_until,
            "assignee_id": first.assignee_id,
            "assignee": owner,
            "priority": first.priority.value,
        },
        "people": sorted(people, key=lambda p: str(p["name"]).lower()),
        "label_choices": choices,
        "statuses": [s.value for s in ConversationStatus],
        "priorities": [p.value for p in Priority],
    }


def _pane_context(number: str, owner: str, status: str, label: str | None) -> dict[str, Any]:
    """The open conversation: state bar, thread and composer (the chat page's partials)."""
    state = state_context(number)  # first: an unknown customer is a 404
    # The profile itself loads after the pane (inbox/_profile_box.html); its name is the title.
    with session_scope(write=False) as session:
        edited = profiles.edited_names(session, [number]).get(number)
    if edited:
        state["customer"] = edited
    return {**chat_context(number), **state, "list_query": _query(owner, status, label)}


def _unread_mentions(user: SignedIn) -> int:
    with session_scope(write=False) as session:
        return notes.unread_count(session, user.user_id)


@router.get("/inbox", response_class=HTMLResponse)
def inbox_page(
    request: Request,
    user: PanelViewer,
    owner: Owner = DEFAULT_OWNER,
    status: State = DEFAULT_STATUS,
    label: LabelName = None,
    c: Text = None,
) -> Response:
    """The team inbox: the conversations on the left, the open one (`c`) on the right."""
    number = participant_number(c) if c else None
    context = _list_context(user, owner, status, label, None, number)
    if number:
        context.update(_pane_context(number, owner, status, label))
    context["mentions_unread"] = _unread_mentions(user)
    return render(request, "inbox/index.html", {**context, "tab": "inbox"}, user=user)


@router.get("/inbox/list", response_class=HTMLResponse)
def inbox_list(
    request: Request,
    user: PanelViewer,
    owner: Owner = DEFAULT_OWNER,
    status: State = DEFAULT_STATUS,
    label: LabelName = None,
    cursor: Text = None,
    c: Text = None,
) -> Response:
    """The list (reloaded live), or with `cursor` the next rows for "Load more"."""
    current = participant_number(c) if c else None
    context = _list_context(user, owner, status, label, cursor, current)
    template = "inbox/_rows.html" if cursor else "inbox/_list.html"
    return render(request, template, context, user=user)


@router.get("/inbox/{participant}/pane", response_class=HTMLResponse)
def inbox_pane(
    request: Request,
    participant: str,
    user: PanelViewer,
    owner: Owner = DEFAULT_OWNER,
    status: State = DEFAULT_STATUS,
    label: LabelName = None,
) -> Response:
    """One conversation, loaded beside the list when its row is clicked."""
    context = _pane_context(participant_number(participant), owner, status, label)
    return render(request, "inbox/_pane.html", context, user=user)


@router.get("/inbox/{participant}/state", response_class=HTMLResponse)
def inbox_state(request: Request, participant: str, user: PanelViewer) -> Response:
    """The state bar alone (reloaded live)."""
    context = state_context(participant_number(participant))
    return render(request, "inbox/_state.html", context, user=user)


def _choice(kind: type[E], value: str, field: str) -> E:
    try:
        return kind(value)
    except ValueError:
        raise Invalid(
            N_("'%(value)s' is not a choice for %(field)s"),
            params={"value": value[:40], "field": field},
            field=field,
        ) from None


def _owner_id(value: str, user: SignedIn) -> int | None:
    """The owner a form chose: "me", "" (nobody) or a user's id."""
    if value == "me":
        return user.user_id
    if not value:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise Invalid(
            N_("'%(value)s' is not a choice for %(field)s"),
            params={"value": value[:40], "field": "assignee"},
            field="assignee_id",
        )
    return int(value)


def _wanted(
    status: str | None,
    snoozed_until: str | None,
    assignee: str | None,
    priority: str | None,
    user: SignedIn,
) -> states.Change:
    """The change a state bar control asks for: only the fields it sent."""
    given: dict[str, Any] = {}
    if status is not None:
        given["status"] = _choice(ConversationStatus, status, "status")
    if snoozed_until is not None:
        given["snoozed_until"] = form_datetime(snoozed_until, "snoozed_until")
    if assignee is not None:
        given["assignee_id"] = _owner_id(assignee, user)
    if priority is not None:
        given["priority"] = _choice(Priority, priority, "priority")
    if not given:
        raise Invalid(N_("Nothing to change"), params={})
    return states.Change(**given)


@router.post("/inbox/{participant}/state", response_class=HTMLResponse)
def change_state(
    request: Request,
    participant: str,
    user: PanelOperator,
    status: Field = None,
    snoozed_until: Field = None,
    assignee: Field = None,
    priority: Field = None,
) -> Response:
    """Change the status, snooze, owner or priority; the thread and list then reload."""
    number = participant_number(participant)
    wanted = _wanted(status, snoozed_until, assignee, priority, user)
    with session_scope() as session:
        states.change(session, number, wanted, user.principal)
    return render(
        request,
        "inbox/_state.html",
        state_context(number),
        headers={"HX-Trigger": CHANGED},
        user=user,
    )


@router.post("/inbox/{participant}/read", response_class=HTMLResponse)
def inbox_read(request: Request, participant: str, user: PanelViewer) -> Response:
    """The user opened the conversation: nothing in it is unread for them any more."""
    number = participant_number(participant)
    with session_scope() as session:
        if ROLE_RANK[user.role] >= ROLE_RANK["operator"]:
            service.mark_read(session, number)  # the shared counter, as the chat page does
        states.mark_read(session, number, user.user_id)
        ids = list(
            session.scalars(select(Conversation.id).where(Conversation.participant == number))
        )
    return render(request, "inbox/_read.html", {"ids": ids}, user=user)
