"""Panel pages of the inbox: the Messages tab and the chat with one customer."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from relaydesk.automation import service as automation
from relaydesk.automation.views import answering_mode
from relaydesk.contacts.service import participant_number
from relaydesk.db import session_scope
from relaydesk.errors import NotFound
from relaydesk.messaging import outbox, queries, scheduled, service
from relaydesk.messaging.segments import GSM7_BASIC, GSM7_EXTENSION
from relaydesk.messaging.status import KNOWN
from relaydesk.web.deps import PanelOperator, PanelViewer
from relaydesk.web.forms import form_datetime
from relaydesk.web.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
STATUS_CHOICES = sorted(KNOWN)
CHANGED = "rd:changed"  # the client-side event that makes live fragments reload


def _segment_rules() -> dict[str, str]:
    """The GSM-7 alphabet, for the browser's segment counter (same rules as the server)."""
    return {"basic": "".join(sorted(GSM7_BASIC)), "extension": "".join(sorted(GSM7_EXTENSION))}


def _history(
    direction: str | None,
    status: str | None,
    q: str | None,
    cursor: str | None,
    after: str | None,
) -> dict[str, Any]:
    with session_scope(write=False) as session:
        items, older, newer = queries.list_messages(
            session,
            direction=direction or None,
            status=status or None,
            q=q or None,
            limit=PAGE_SIZE,
            cursor=cursor or None,
            after=after or None,
        )
        counts = queries.counts(session)
    filters = {"direction": direction or "", "status": status or "", "q": q or ""}
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
    }


Direction = Annotated[str | None, Query(pattern="^(inbound|outbound)?$")]
Text = Annotated[str | None, Query(max_length=200)]


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
) -> Response:
    """The Messages tab: counts, the send form, scheduled messages and the history."""
    context = {**_history(direction, status, q, None, None), **_scheduled()}
    return render(
        request,
        "messages/index.html",
        {**context, "tab": "messages", "segment_rules": _segment_rules()},
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
) -> Response:
    """The history table and the counters (reloaded live and by the filters)."""
    context = _history(direction, status, q, cursor, after)
    return render(request, "messages/_history.html", {**context, "oob": True}, user=user)


@router.get("/messages/scheduled", response_class=HTMLResponse)
def scheduled_list(request: Request, user: PanelViewer) -> Response:
    """Messages waiting for their send time (reloaded live)."""
    return render(request, "messages/_scheduled.html", _scheduled(), user=user)


@router.post("/messages/scheduled/{message_id}/cancel", response_class=HTMLResponse)
def cancel_scheduled(request: Request, message_id: int, user: PanelOperator) -> Response:
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


@router.post("/messages/send", response_class=HTMLResponse)
def send_from_panel(
    request: Request,
    user: PanelOperator,
    to: Annotated[str, Form(max_length=64)] = "",
    body: Annotated[str, Form(max_length=service.MAX_BODY * 2)] = "",
    send_at: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Send (or schedule) a message typed into the Messages tab's form."""
    wanted = service.SendRequest(
        to=to,
        body=body,
        source="operator",
        user_id=user.user_id,
        send_at=form_datetime(send_at, "send_at"),
    )
    with session_scope() as session:
        sent = outbox.send_now(session, wanted)
    return _sent_notice(request, sent, user)


@router.post("/messages/{message_id}/delete", response_class=HTMLResponse)
def delete_from_panel(request: Request, message_id: int, user: PanelOperator) -> Response:
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
    with session_scope(write=False) as session:
        items, older, opted_out = queries.thread(
            session, number, limit=THREAD_PAGE, before=before or None
        )
        grounded = automation.knowledge_for(
            session, number, [m["id"] for m in items if m["direction"] == "outbound"]
        )
    for item in items:
        item["knowledge"] = grounded.get(item["id"])
    channel = next((m["channel"] for m in reversed(items) if m["direction"] == "inbound"), "sms")
    return {
        "participant": number,
        "items": items,
        "older": older,
        "before": before or "",
        "opted_out": opted_out,
        "channel": "whatsapp" if channel == "whatsapp" else "sms",
    }


def _bot_context(number: str) -> dict[str, Any]:
    """Whether the bot answers this customer now (None before any conversation exists)."""
    with session_scope(write=False) as session:
        try:
            state = automation.conversation_state(session, number)
        except NotFound:
            return {"participant": number, "bot": None}
        return {"participant": number, "bot": state, "answering": answering_mode(session, number)}


@router.get("/chat/{participant}", response_class=HTMLResponse)
def chat_page(
    request: Request, participant: str, user: PanelViewer, before: Before = None
) -> Response:
    """The conversation with one customer as chat bubbles, with a composer."""
    number = participant_number(participant)
    context = {**_thread_context(number, before), **_bot_context(number)}
    return render(
        request,
        "messages/chat.html",
        {**context, "tab": "messages", "segment_rules": _segment_rules()},
        user=user,
    )


@router.get("/chat/{participant}/bot", response_class=HTMLResponse)
def chat_bot(request: Request, participant: str, user: PanelViewer) -> Response:
    """The bot's status line and switch (reloaded live)."""
    number = participant_number(participant)
    return render(request, "messages/_bot.html", _bot_context(number), user=user)


@router.post("/chat/{participant}/bot", response_class=HTMLResponse)
def chat_bot_switch(
    request: Request,
    participant: str,
    user: PanelOperator,
    enabled: Annotated[str | None, Form(max_length=10)] = None,
) -> Response:
    """Switch automatic answers on or off for this customer (on also ends a takeover pause)."""
    number = participant_number(participant)
    with session_scope() as session:
        automation.set_conversation_automation(session, number, enabled == "on", user.actor)
    return render(request, "messages/_bot.html", _bot_context(number), user=user)


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
    body: Annotated[str, Form(max_length=service.MAX_BODY * 2)] = "",
    channel: Annotated[str, Form(pattern="^(sms|whatsapp)$")] = "sms",
    send_at: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Answer (or schedule an answer to) the customer from the chat's composer."""
    number = participant_number(participant)
    to = f"whatsapp:{number}" if channel == "whatsapp" else number
    wanted = service.SendRequest(
        to=to,
        body=body,
        source="operator",
        user_id=user.user_id,
        send_at=form_datetime(send_at, "send_at"),
    )
    with session_scope() as session:
        sent = outbox.send_now(session, wanted)
    return _sent_notice(request, sent, user)
