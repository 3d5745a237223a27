"""Panel pages of the inbox: the Messages tab and the chat with one customer."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from relaydesk.auth.sessions import SignedIn
from relaydesk.channels.twilio.segments import GSM7_BASIC, GSM7_EXTENSION
from relaydesk.contacts.service import participant_number
from relaydesk.core.db import session_scope
from relaydesk.core.errors import Invalid, RelaydeskError
from relaydesk.core.i18n import N_
from relaydesk.deps import Id
from relaydesk.messaging import outbox, queries, scheduled, service, states, templates
from relaydesk.messaging.models import Label, Message
from relaydesk.messaging.status import KNOWN
from relaydesk.web.deps import PanelOperator, PanelViewer
from relaydesk.web.errors import error_text
from relaydesk.web.forms import form_datetime
from relaydesk.web.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
STATUS_CHOICES = sorted(KNOWN)
CHANGED = "rd:changed"  # the client-side event that makes live fragments reload
THREAD_ENTRIES = "thread_entries"  # a ThreadPart's own entries: dicts with a created_at


# Later domains add to the chat page when their views load: what they know about the
# messages of a thread (a ThreadPart may annotate the items and returns extra context;
# under THREAD_ENTRIES it may give entries of its own, e.g. the inbox's private notes,
# which join the thread by time) and about the conversation (a ChatPart's context joins
# the page's).
ThreadPart = Callable[[Session, str, list[dict[str, Any]]], dict[str, Any]]
ChatPart = Callable[[str], dict[str, Any]]
_thread_parts: list[ThreadPart] = []
_chat_parts: list[ChatPart] = []


def thread_part(func: ThreadPart) -> ThreadPart:
    """Register something a later domain adds to every thread (files, sources)."""
    _thread_parts.append(func)
    return func


def chat_part(func: ChatPart) -> ChatPart:
    """Register something a later domain adds to the chat page (the bot's state)."""
    _chat_parts.append(func)
    return func


def chat_extras(number: str) -> dict[str, Any]:
    """What the registered chat parts add for this customer."""
    extras: dict[str, Any] = {}
    for part in _chat_parts:
        extras.update(part(number))
    return extras


def segment_rules() -> dict[str, str]:
    """The GSM-7 alphabet, for the browser's segment counter (same rules as the server)."""
    return {"basic": "".join(sorted(GSM7_BASIC)), "extension": "".join(sorted(GSM7_EXTENSION))}


def _history(
    direction: str | None,
    status: str | None,
    q: str | None,
    cursor: str | None,
    after: str | None,
    label: str | None = None,
) -> dict[str, Any]:
    with session_scope(write=False) as session:
        items, older, newer = queries.list_messages(
            session,
            direction=direction or None,
            status=status or None,
            q=q or None,
            label=label or None,
            limit=PAGE_SIZE,
            cursor=cursor or None,
            after=after or None,
        )
        counts = queries.counts(session)
        label_names = list(session.scalars(select(Label.name).order_by(Label.key)))
    filters = {
        "direction": direction or "",
        "status": status or "",
        "q": q or "",
        "label": label or "",
    }
    base = {k: v for k, v in filters.items() if v}
    page = {"cursor": cursor} if cursor else {"after": after} if after else {}
    return {
        "items": items,
        "counts": counts,
        "filters": filters,
        "self_url": "/messages/rows?" + urlencode({**base, **page}),
        "older_url": "/messages/rows?" + urlencode({**base, "cursor": older}) if older else None,
        "newer_url": "/messages/rows?" + urlencode({**base, "after": newer}) if newer else None,
        "first_url": "/messages/rows?" + urlencode(base) if (cursor or after) else None,
        "statuses": STATUS_CHOICES,
        "label_names": label_names,
    }


Direction = Annotated[str | None, Query(pattern="^(inbound|outbound)?$")]
Text = Annotated[str | None, Query(max_length=200)]
LabelName = Annotated[str | None, Query(max_length=100)]


def _scheduled() -> dict[str, Any]:
    with session_scope(write=False) as session:
        return {"scheduled": scheduled.list_scheduled(session)}


@router.get("/messages", response_class=HTMLResponse)
def messages_page(
    request: Request,
    user: PanelViewer,
    direction: Direction = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    q: Text = None,
    label: LabelName = None,
) -> Response:
    """The Messages tab: counts, the send form, scheduled messages and the history."""
    context = {**_history(direction, status, q, None, None, label), **_scheduled()}
    return render(
        request,
        "messages/index.html",
        {**context, "tab": "messages", "segment_rules": segment_rules()},
        user=user,
    )


@router.get("/messages/rows", response_class=HTMLResponse)
def messages_rows(
    request: Request,
    user: PanelViewer,
    direction: Direction = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    q: Text = None,
    cursor: Text = None,
    after: Text = None,
    label: LabelName = None,
) -> Response:
    """The history table and the counters (reloaded live and by the filters)."""
    context = _history(direction, status, q, cursor, after, label)
    return render(request, "messages/_history.html", {**context, "oob": True}, user=user)


@router.get("/messages/scheduled", response_class=HTMLResponse)
def scheduled_list(request: Request, user: PanelViewer) -> Response:
    """Messages waiting for their send time (reloaded live)."""
    return render(request, "messages/_scheduled.html", _scheduled(), user=user)


@router.post("/messages/scheduled/{message_id}/cancel", response_class=HTMLResponse)
def cancel_scheduled(request: Request, message_id: Id, user: PanelOperator) -> Response:
    """Cancel a scheduled message before its time (asked to confirm in the browser first)."""
    with session_scope() as session:
        scheduled.cancel(session, message_id, user.actor)
    return render(
        request,
        "_notice.html",
        {"kind": "success", "text_key": "canceled"},
        headers={"HX-Trigger": CHANGED},
        user=user,
    )


def _sent_notice(request: Request, sent: outbox.Sent, user: Any) -> Response:
    message = sent.message
    state = sent.outcome.state
    error = sent.outcome.error
    return render(
        request,
        "_send_result.html",
        {"message": message, "state": state, "error": error},
        headers={"HX-Trigger": CHANGED},
        user=user,
    )


MediaUrls = Annotated[list[str] | None, Form(max_length=service.MAX_MEDIA)]
ContentSid = Annotated[str, Form(max_length=40)]
VariableParts = Annotated[list[str] | None, Form(max_length=100)]


def _panel_request(
    to: str,
    body: str,
    send_at: str,
    media_urls: list[str] | None,
    content_sid: str,
    var_key: list[str] | None,
    var_value: list[str] | None,
    user: SignedIn,
) -> service.SendRequest:
    """What a panel form asks to send: text, files, or a template with its variables."""
    keys, values = var_key or [], var_value or []
    if len(keys) != len(values):
        raise Invalid(
            N_("Every template variable needs a value"), params={}, field="content_variables"
        )
    return service.SendRequest(
        to=to,
        body=body,
        media_urls=[url for url in media_urls or [] if url],
        content_sid=content_sid or None,
        content_variables=dict(zip(keys, values, strict=True)) if content_sid and keys else None,
        source="operator",
        user_id=user.user_id,
        send_at=form_datetime(send_at, "send_at"),
    )


def _send(request: Request, wanted: service.SendRequest, user: Any) -> Response:
    return _sent_notice(request, outbox.send_now(wanted), user)


@router.post("/messages/send", response_class=HTMLResponse)
def send_from_panel(
    request: Request,
    user: PanelOperator,
    to: Annotated[str, Form(max_length=64)] = "",
    body: Annotated[str, Form(max_length=service.MAX_INPUT)] = "",
    send_at: Annotated[str, Form(max_length=40)] = "",
    media_urls: MediaUrls = None,
    content_sid: ContentSid = "",
    var_key: VariableParts = None,
    var_value: VariableParts = None,
) -> Response:
    """Send (or schedule) a message typed into the Messages tab's form."""
    wanted = _panel_request(to, body, send_at, media_urls, content_sid, var_key, var_value, user)
    return _send(request, wanted, user)


@router.post("/messages/{message_id}/delete", response_class=HTMLResponse)
def delete_from_panel(request: Request, message_id: Id, user: PanelOperator) -> Response:
    """Delete one message from history (asked to confirm in the browser first)."""
    with session_scope() as session:
        service.delete_message(session, message_id, user.actor)
    return render(
        request,
        "_notice.html",
        {"kind": "success", "text_key": "deleted"},
        headers={"HX-Trigger": CHANGED},
        user=user,
    )


THREAD_PAGE = 200
Before = Annotated[str | None, Query(max_length=200)]


def _thread_context(number: str, before: str | None = None) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    with session_scope(write=False) as session:
        rows, older, opted_out = queries.thread(
            session, number, limit=THREAD_PAGE, before=before or None
        )
        # The bubbles are the API's messages as dicts, for the parts to annotate; a file's
        # keys are those it has (a file still downloading has no id or kind yet).
        items = [m.model_dump(by_alias=True, exclude_unset=True) for m in rows]
        shared = _shared_by_customer(
            session, [m["id"] for m in items if m["direction"] == "inbound"]
        )
        for item in items:
            item.update(shared.get(item["id"], {}))
        added: list[dict[str, Any]] = []
        for part in _thread_parts:
            found = part(session, number, items)
            added.extend(found.pop(THREAD_ENTRIES, []))
            extras.update(found)
        events = _within([*_events(session, number), *added], items, older, before)
    channel = next((m["channel"] for m in reversed(items) if m["direction"] == "inbound"), "sms")
    return {
        "participant": number,
        "items": items,
        # The bubbles, the team's changes (assigned, resolved, …) and the parts' entries
        # in time order; at the same moment the message first (the customer's message
        # that reopened it).
        "entries": sorted([*items, *events], key=lambda e: (e["created_at"], "direction" not in e)),
        "older": older,
        "before": before or "",
        "opted_out": opted_out,
        "channel": "whatsapp" if channel == "whatsapp" else "sms",
        **extras,
    }


def _events(session: Session, number: str) -> list[dict[str, Any]]:
    """The conversation's events as thread entries."""
    return [
        {
            "event": True,
            "kind": e.kind,
            "actor": e.actor,
            "data": e.data or {},
            "until": _stored_time((e.data or {}).get("until")),
            "created_at": e.created_at,
        }
        for e in states.events_of(session, number)
    ]


def _within(
    entries: list[dict[str, Any]],
    items: list[dict[str, Any]],
    older: str | None,
    before: str | None,
) -> list[dict[str, Any]]:
    """The entries (events, notes) that fall within this page of messages."""
    events = entries
    if items and older:  # an older page holds the earlier events
        events = [e for e in events if e["created_at"] >= items[0]["created_at"]]
    if items and before:  # a newer page holds the later ones
        events = [e for e in events if e["created_at"] <= items[-1]["created_at"]]
    return events


def _stored_time(value: Any) -> datetime | None:
    """A time an event keeps in its data (ISO 8601), or None."""
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _shared_by_customer(session: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Locations and button taps, which Twilio reports as webhook fields, not as files."""
    if not ids:
        return {}
    found: dict[int, dict[str, Any]] = {}
    for message_id, raw in session.execute(
        select(Message.id, Message.raw).where(Message.id.in_(ids))
    ).all():
        params = raw or {}
        extra: dict[str, Any] = {}
        place = _location(params)
        if place:
            extra["location"] = place
        if params.get("ButtonText") or params.get("ButtonPayload"):
            extra["button"] = str(params.get("ButtonText") or params.get("ButtonPayload"))[:200]
        if extra:
            found[message_id] = extra
    return found


def _location(params: dict[str, Any]) -> dict[str, str] | None:
    try:
        lat, lon = float(params.get("Latitude", "")), float(params.get("Longitude", ""))
    except ValueError:
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return {
        "label": str(params.get("Label") or "")[:200],
        "address": str(params.get("Address") or "")[:300],
        "coordinates": f"{lat:.6f}, {lon:.6f}",
        "map_url": "https://www.openstreetmap.org/?"
        + urlencode({"mlat": f"{lat:.6f}", "mlon": f"{lon:.6f}"})
        + f"#map=16/{lat:.6f}/{lon:.6f}",
    }


def _window_context(number: str, channel: str) -> dict[str, Any]:
    """The WhatsApp 24-hour window with this customer (None outside WhatsApp)."""
    if channel != "whatsapp":
        return {"participant": number, "window": None}
    with session_scope(write=False) as session:
        try:
            window = service.whatsapp_window(session, f"whatsapp:{number}")
        except Invalid:
            window = None
    return {"participant": number, "window": window}


def chat_context(number: str, before: str | None = None) -> dict[str, Any]:
    """What the chat's partials need: the thread, the parts, the window, the composer."""
    context = {**_thread_context(number, before), **chat_extras(number)}
    context.update(_window_context(number, context["channel"]))
    return {**context, "segment_rules": segment_rules()}


@router.get("/chat/{participant}", response_class=HTMLResponse)
def chat_page(
    request: Request, participant: str, user: PanelViewer, before: Before = None
) -> Response:
    """The conversation with one customer as chat bubbles, with a composer."""
    context = chat_context(participant_number(participant), before)
    return render(request, "messages/chat.html", {**context, "tab": "messages"}, user=user)


@router.get("/chat/{participant}/window", response_class=HTMLResponse)
def chat_window(request: Request, participant: str, user: PanelViewer) -> Response:
    """The WhatsApp window line above the composer (reloaded live)."""
    number = participant_number(participant)
    with session_scope(write=False) as session:
        channel = session.scalar(
            select(Message.channel)
            .where(Message.participant == number, Message.direction == "inbound")
            .order_by(Message.id.desc())
            .limit(1)
        )
    context = _window_context(number, channel or "sms")
    return render(request, "messages/_window.html", context, user=user)


PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]{1,16})\s*\}\}")


def _template_choice(template: dict[str, Any]) -> dict[str, Any]:
    """A template with its variables in order (numbers by value), defaults filled in."""
    defaults = dict(template.get("variables") or {})
    names = set(defaults) | set(PLACEHOLDER.findall(template.get("body") or ""))
    ordered = sorted(names, key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0, n))
    return {**template, "fields": [(name, defaults.get(name, "")) for name in ordered]}


@router.get("/chat/{participant}/templates", response_class=HTMLResponse)
def chat_templates(request: Request, participant: str, user: PanelOperator) -> Response:
    """The WhatsApp template picker (loaded when the chat opens; Twilio may be slow)."""
    number = participant_number(participant)
    error = None
    try:
        found = [_template_choice(t) for t in templates.list_templates()]
    except RelaydeskError as exc:
        found, error = [], error_text(request, exc)
    return render(
        request,
        "messages/_templates.html",
        {"participant": number, "templates": found, "error": error},
        user=user,
    )


@router.get("/chat/{participant}/thread", response_class=HTMLResponse)
def chat_thread(
    request: Request, participant: str, user: PanelViewer, before: Before = None
) -> Response:
    """The bubbles alone (reloaded live)."""
    number = participant_number(participant)
    return render(request, "messages/_thread.html", _thread_context(number, before), user=user)


@router.post("/chat/{participant}/read", status_code=204)
def chat_read(participant: str, user: PanelOperator) -> Response:
    """The operator opened the conversation: it is no longer unread."""
    with session_scope() as session:
        service.mark_read(session, participant_number(participant))
    return Response(status_code=204)


@router.post("/chat/{participant}/send", response_class=HTMLResponse)
def chat_send(
    request: Request,
    participant: str,
    user: PanelOperator,
    body: Annotated[str, Form(max_length=service.MAX_INPUT)] = "",
    channel: Annotated[str, Form(pattern="^(sms|whatsapp)$")] = "sms",
    send_at: Annotated[str, Form(max_length=40)] = "",
    media_urls: MediaUrls = None,
    content_sid: ContentSid = "",
    var_key: VariableParts = None,
    var_value: VariableParts = None,
) -> Response:
    """Answer (or schedule an answer to) the customer: text, files, or a WhatsApp template."""
    number = participant_number(participant)
    to = f"whatsapp:{number}" if channel == "whatsapp" else number
    wanted = _panel_request(to, body, send_at, media_urls, content_sid, var_key, var_value, user)
    return _send(request, wanted, user)
