"""REST routes for messages, conversations and statistics."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from relaydesk.auth.service import Principal
from relaydesk.contacts.service import participant_number
from relaydesk.core.errors import Invalid, NotFound, VendorRefused
from relaydesk.core.i18n import N_
from relaydesk.deps import Id, Operator, SessionDep, Viewer, WriteSessionDep
from relaydesk.messaging import outbox, queries, scheduled, service, states, templates
from relaydesk.messaging.models import Conversation, ConversationStatus, Message, Priority
from relaydesk.messaging.schemas import (
    ConversationEventOut,
    ConversationPage,
    ConversationPatch,
    ConversationThread,
    Counts,
    MessageOut,
    MessagePage,
    SendMessageIn,
    Stats,
)

router = APIRouter(tags=["messages"])


@router.post(
    "/api/send-message",
    status_code=201,
    response_model=MessageOut,
    responses={
        202: {"description": "Stored; Twilio was unavailable, delivery is retried"},
        409: {"description": "Opted-out contact"},
        422: {
            "description": "Invalid input (send_at in the past, a file of the wrong type or "
            "size), the WhatsApp 24-hour window is closed (code whatsapp_window_closed), or "
            "Twilio refused the message"
        },
    },
)
def send_message(payload: SendMessageIn, principal: Operator) -> dict[str, Any] | JSONResponse:
    """Send an SMS, MMS or WhatsApp message; Twilio's answer is in the response.

    With `send_at` the message is stored with status `scheduled` (201) and sent then.
    """
    sent = outbox.send_now(
        service.SendRequest(
            to=payload.to,
            body=payload.body,
            media_urls=payload.media_urls,
            content_sid=payload.content_sid,
            content_variables=payload.content_variables,
            from_=payload.from_,
            source="api",
            send_at=payload.send_at,
        ),
    )
    outcome = sent.outcome
    body = sent.message.model_dump(mode="json", by_alias=True)
    if outcome.state == "refused" and outcome.error is not None:
        raise VendorRefused(
            N_("Twilio refused the message: %(reason)s"),
            params={"reason": outcome.error.message},
            twilio_code=outcome.error.code,
            message=body,
        )
    if outcome.state == "retrying":
        return JSONResponse(body, status_code=202)
    return body


@router.get(
    "/api/whatsapp/templates",
    responses={502: {"description": "Twilio's Content API could not be read"}},
)
def whatsapp_templates(
    principal: Viewer, fresh: Annotated[bool, Query(description="skip the 60 s cache")] = False
) -> list[dict[str, Any]]:
    """Approved templates (Twilio Content API) to send outside the 24-hour window.

    Send one with `POST /api/send-message` `{to, content_sid, content_variables}`.
    """
    return templates.list_templates(fresh=fresh)


@router.get("/api/scheduled-messages", response_model=list[MessageOut])
def list_scheduled(
    principal: Viewer,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 100,
) -> list[Message]:
    """Messages waiting for their send time, soonest first."""
    return scheduled.list_scheduled(session, limit)


@router.delete(
    "/api/scheduled-messages/{message_id}",
    response_model=MessageOut,
    responses={409: {"description": "Already handed to Twilio, or not a scheduled message"}},
)
def cancel_scheduled(message_id: Id, principal: Operator, session: WriteSessionDep) -> Message:
    """Cancel a scheduled message before its time (audited); answers the canceled message."""
    return scheduled.cancel(session, message_id, principal.actor)


@router.get("/api/messages", response_model=MessagePage)
def list_messages(
    principal: Viewer,
    session: SessionDep,
    direction: Literal["inbound", "outbound"] | None = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    participant: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    label: Annotated[
        str | None,
        Query(max_length=100, description="a label's name, ignoring case: its conversations"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = queries.DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> MessagePage:
    """Messages newest first, filtered, with keyset pagination and total counts."""
    items, nxt, _newer = queries.list_messages(
        session,
        direction=direction,
        status=status,
        participant=participant_number(participant) if participant else None,
        q=q,
        label=label,
        limit=limit,
        cursor=cursor,
    )
    return MessagePage(items=items, next=nxt, counts=Counts(**queries.counts(session)))


@router.get("/api/messages/{message_id}", response_model=MessageOut)
def get_message(message_id: Id, principal: Viewer, session: SessionDep) -> Message:
    """One message."""
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound(N_("Message %(id)s does not exist"), params={"id": message_id})
    return message


@router.delete("/api/messages/{message_id}", status_code=204)
def delete_message(message_id: Id, principal: Operator, session: WriteSessionDep) -> Response:
    """Delete a message from history (audited)."""
    service.delete_message(session, message_id, principal.actor)
    return Response(status_code=204)


@router.get("/api/conversations", response_model=ConversationPage)
def list_conversations(
    principal: Viewer,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = queries.DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    unread: bool = False,
    status: ConversationStatus | None = None,
    assignee: Annotated[
        str | None,
        Query(max_length=20, description="me, none, or a user's id"),
    ] = None,
    priority: Priority | None = None,
    label: Annotated[
        str | None,
        Query(max_length=100, description="a label's name, ignoring case"),
    ] = None,
) -> Any:
    """Conversations, most recent first: filtered by state, owner, priority, label or unread.

    A label name no label has finds nothing (an empty list, not an error).
    """
    items, nxt = queries.list_conversations(
        session,
        limit=limit,
        cursor=cursor,
        unread_only=unread,
        status=status,
        assignee=_assignee_filter(assignee, principal),
        priority=priority,
        user_id=principal.user_id,
        label=label,
    )
    return {"items": items, "next": nxt}


def _assignee_filter(value: str | None, principal: Principal) -> int | Literal["none"] | None:
    """?assignee=me|none|<id> as the query wants it."""
    if value is None or value == "":
        return None
    if value == "none":
        return "none"
    if value == "me":
        if principal.user_id is None:
            raise Invalid(
                N_("assignee=me needs a user: this token belongs to nobody"),
                params={},
                field="assignee",
            )
        return principal.user_id
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise Invalid(N_("assignee is me, none or a user's id"), params={}, field="assignee")
    return int(value)


@router.get("/api/conversations/{participant}", response_model=ConversationThread)
def conversation(
    participant: str,
    principal: Viewer,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = queries.MAX_LIMIT,
    before: Annotated[str | None, Query(max_length=200)] = None,
) -> ConversationThread:
    """The messages exchanged with one customer, oldest first, with its state and events."""
    number = participant_number(participant)
    items, older, opted_out = queries.thread(session, number, limit=limit, before=before)
    return ConversationThread(
        participant=number,
        opted_out=opted_out,
        items=items,
        before=older,
        **_state(session, number),
    )


def _state(session: Session, number: str) -> dict[str, Any]:
    """The conversation's state, owner, priority, labels and events (none before a message)."""
    first = session.scalar(
        select(Conversation)
        .where(Conversation.participant == number)
        .order_by(Conversation.id)
        .limit(1)
    )
    if first is None:
        return {}
    return {
        "status": first.status,
        "snoozed_until": first.snoozed_until,
        "assignee_id": first.assignee_id,
        "assignee": states.user_name(session, first.assignee_id),
        "priority": first.priority,
        "labels": queries.label_names_of(session, number),
        "events": [
            ConversationEventOut.model_validate(event)
            for event in states.events_of(session, number)
        ],
    }


@router.patch(
    "/api/conversations/{participant}",
    response_model=ConversationThread,
    responses={
        404: {"description": "No conversation with this number"},
        422: {"description": "An unknown status or priority, a bad snooze, an unusable user"},
    },
)
def change_conversation(
    participant: str, payload: ConversationPatch, principal: Operator, session: WriteSessionDep
) -> ConversationThread:
    """Change the state, owner or priority of a customer's conversation (fields given only).

    `status` snoozed needs `snoozed_until` (in the future, at most a year ahead); a
    customer's message opens a resolved or snoozed conversation again, keeping its owner.
    Each change is an event in the thread and an entry in the audit log.
    """
    number = participant_number(participant)
    given = payload.model_fields_set
    wanted = states.Change(
        **{name: getattr(payload, name) for name in given}  # only what the caller sent
    )
    states.change(session, number, wanted, principal)
    return ConversationThread(
        participant=number, opted_out=False, items=[], before=None, **_state(session, number)
    )


@router.post("/api/conversations/{participant}/read", status_code=204)
def mark_read(participant: str, principal: Operator, session: WriteSessionDep) -> Response:
    """Mark a customer's conversations as read (for everyone, and for the caller)."""
    number = participant_number(participant)
    service.mark_read(session, number)
    states.mark_read(session, number, principal.user_id)
    return Response(status_code=204)


@router.get("/stats", response_model=Stats, tags=["health"])
def stats(
    principal: Viewer, session: SessionDep, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> Any:
    """Message counts per direction, status and day."""
    return queries.stats(session, days)
