"""Read side of the inbox: every query is an index range scan, whatever the history size."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Select, Text, and_, cast, false, func, or_, select
from sqlalchemy.orm import Session

from relaydesk.auth.models import User
from relaydesk.contacts.models import Contact
from relaydesk.core.db import utcnow
from relaydesk.core.errors import Invalid
from relaydesk.core.i18n import N_
from relaydesk.core.pagination import cursor_id, decode_cursor, encode_cursor
from relaydesk.messaging import search, states
from relaydesk.messaging.models import (
    Conversation,
    ConversationLabel,
    ConversationRead,
    ConversationStatus,
    Label,
    Message,
    MessageCounter,
    MessageStatus,
    Priority,
)
from relaydesk.messaging.schemas import MessageOut
from relaydesk.messaging.status import KNOWN

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# The columns of a listed message. Lists are read as plain rows straight into MessageOut:
# building ORM objects first (identity map, instance state, instrumented attributes)
# cost more than the query itself on a 200-message thread.
_LISTED = (
    Message.id,
    Message.sid,
    Message.direction,
    Message.channel,
    Message.from_addr,
    Message.to_addr,
    Message.participant,
    Message.body,
    Message.status,
    Message.error_code,
    Message.error_message,
    Message.num_segments,
    Message.encoding,
    Message.source,
    Message.attempts,
    Message.created_at,
    Message.updated_at,
    Message.media,
    Message.scheduled_at,
)
_LISTED_KEYS = tuple(column.key for column in _LISTED)


def _listed(session: Session, query: Select[Any]) -> list[MessageOut]:
    """The rows of a query over _LISTED as the API's messages, in the query's order."""
    return [
        MessageOut.model_validate(dict(zip(_LISTED_KEYS, row, strict=True)))
        for row in session.execute(query)
    ]


def counts(session: Session) -> dict[str, int]:
    """Totals per direction (kept by the writers, so this is two tiny rows)."""
    rows = dict(session.execute(select(MessageCounter.direction, MessageCounter.count)).all())
    inbound, outbound = int(rows.get("inbound", 0)), int(rows.get("outbound", 0))
    return {"total": inbound + outbound, "inbound": inbound, "outbound": outbound}


def _like(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_messages(
    session: Session,
    *,
    direction: str | None = None,
    status: str | None = None,
    participant: str | None = None,
    q: str | None = None,
    label: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    after: str | None = None,
) -> tuple[list[MessageOut], str | None, str | None]:
    """A page of messages, newest first, with the cursors of the older and newer pages.

    `cursor` asks for the page older than a previous page, `after` for the newer one.
    `label` keeps the messages of conversations carrying that label (a name, ignoring
    case; a name no label has finds nothing).
    """
    query = select(*_LISTED)
    if label is not None and label.strip():
        label_id = _label_id(session, label)
        query = query.where(
            Message.conversation_id.in_(
                select(ConversationLabel.conversation_id).where(
                    ConversationLabel.label_id == label_id
                )
            )
            if label_id is not None
            else false()
        )
    if direction:
        query = query.where(Message.direction == direction)
    if status:
        # A status nobody has (a typo) finds nothing, as it always did.
        known = status in KNOWN
        query = query.where(Message.status == MessageStatus(status) if known else false())
    if participant:
        query = query.where(Message.participant == participant)
    if q:
        try:
            wanted = search.parse(q)
        except Invalid:
            wanted = None  # shorter than the index can look for: read the rows
        if wanted is not None:
            return _matching_page(session, query, wanted, limit, cursor, after)
        pattern = _like(q)
        query = query.where(
            or_(
                Message.body.ilike(pattern, escape="\\"),
                Message.participant.like(pattern, escape="\\"),
                # Voice-note transcripts and image descriptions.
                and_(
                    Message.num_media > 0,
                    cast(Message.media, Text).ilike(pattern, escape="\\"),
                ),
            )
        )
    if after:
        first_id = cursor_id(after, "after")
        rows = _listed(
            session, query.where(Message.id > first_id).order_by(Message.id.asc()).limit(limit + 1)
        )
        newer_exists = len(rows) > limit
        page = list(reversed(rows[:limit]))
        nxt = encode_cursor(page[-1].id) if page else None
        prev = encode_cursor(page[0].id) if newer_exists and page else None
        return page, nxt, prev
    if cursor:
        query = query.where(Message.id < cursor_id(cursor, "cursor"))
    rows = _listed(session, query.order_by(Message.id.desc()).limit(limit + 1))
    items = rows[:limit]
    nxt = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    prev = encode_cursor(rows[0].id) if cursor and rows else None
    return items, nxt, prev


def _matching_page(
    session: Session,
    query: Select[Any],
    wanted: search.Query,
    limit: int,
    cursor: str | None,
    after: str | None,
) -> tuple[list[MessageOut], str | None, str | None]:
    """A page of list_messages for a search: the index's candidates, newest first (oldest
    first for `after`), kept when the other filters hold; a number also finds the
    messages of the contacts whose number holds it."""
    before = cursor_id(cursor, "cursor") if cursor and not after else None
    after_id = cursor_id(after, "after") if after else None
    newest_first = after_id is None
    found: dict[int, MessageOut] = {}
    # Chunks a little larger than a page: the other filters may leave some out.
    chunk = limit * 2 + 1
    for ids in search.message_ids(session, wanted, before=before, after=after_id, chunk=chunk):
        for row in _listed(session, query.where(Message.id.in_(ids))):
            found[row.id] = row
        if len(found) > limit:
            break
    numbers = search.participants_with_number(session, wanted)
    if numbers:
        by_number = query.where(Message.participant.in_(numbers))
        if before is not None:
            by_number = by_number.where(Message.id < before)
        if after_id is not None:
            by_number = by_number.where(Message.id > after_id)
        order = Message.id.desc() if newest_first else Message.id.asc()
        for row in _listed(session, by_number.order_by(order).limit(limit + 1)):
            found[row.id] = row
    rows = sorted(found.values(), key=lambda m: m.id, reverse=newest_first)
    more = len(rows) > limit
    if not newest_first:
        page = list(reversed(rows[:limit]))
        return (
            page,
            (encode_cursor(page[-1].id) if page else None),
            (encode_cursor(page[0].id) if more and page else None),
        )
    items = rows[:limit]
    nxt = encode_cursor(items[-1].id) if more else None
    prev = encode_cursor(rows[0].id) if cursor and rows else None
    return items, nxt, prev


def list_conversations(
    session: Session,
    *,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    unread_only: bool = False,
    status: ConversationStatus | None = None,
    assignee: int | Literal["none"] | None = None,
    priority: Priority | None = None,
    user_id: int | None = None,
    label: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Conversations with any message, most recent first, filtered as asked.

    `user_id` is the caller: their own unread counts (`unread_count`), and `unread_only`
    keeps what they have not read; without a user, the shared counter does both. `label`
    is a label's name, ignoring case: a name no label has finds nothing.
    """
    label_id: int | None = None
    if label is not None and label.strip():
        label_id = _label_id(session, label)
        if label_id is None:
            return [], None
    query = (
        select(Conversation, Contact.profile_name, Contact.opted_out_at, User.email, User.name)
        .join(Contact, Contact.id == Conversation.contact_id)
        .outerjoin(User, User.id == Conversation.assignee_id)
        .where(Conversation.last_message_at.is_not(None))
    )
    if status is not None:
        query = query.where(Conversation.status == status)
    if assignee == "none":
        query = query.where(Conversation.assignee_id.is_(None))
    elif assignee is not None:
        query = query.where(Conversation.assignee_id == assignee)
    if priority is not None:
        query = query.where(Conversation.priority == priority)
    if label_id is not None:
        query = query.where(
            select(ConversationLabel.conversation_id)
            .where(
                ConversationLabel.conversation_id == Conversation.id,
                ConversationLabel.label_id == label_id,
            )
            .exists()
        )
    if unread_only and user_id is None:
        query = query.where(Conversation.unread_count > 0)
    elif unread_only:
        read_up_to = (
            select(ConversationRead.last_read_message_id)
            .where(
                ConversationRead.user_id == user_id,
                ConversationRead.conversation_id == Conversation.id,
            )
            .scalar_subquery()
        )
        query = query.where(
            select(Message.id)
            .where(
                Message.conversation_id == Conversation.id,
                Message.direction == "inbound",
                Message.id > func.coalesce(read_up_to, 0),
            )
            .exists()
        )
    if cursor:
        at_text, conv_id = decode_cursor(cursor, 2)
        try:
            at, cid = datetime.fromisoformat(at_text), int(conv_id)
        except ValueError:
            raise Invalid(
                N_("The cursor is not one this API gave out"), params={}, field="cursor"
            ) from None
        query = query.where(
            or_(
                Conversation.last_message_at < at,
                and_(Conversation.last_message_at == at, Conversation.id < cid),
            )
        )
    rows = session.execute(
        query.order_by(Conversation.last_message_at.desc(), Conversation.id.desc()).limit(limit + 1)
    ).all()
    page = rows[:limit]
    mine = (
        states.unread_for(session, user_id, [row[0].id for row in page])
        if user_id is not None
        else {}
    )
    names = _label_names(session, [row[0].id for row in page])
    items = [
        {
            "id": c.id,
            "participant": c.participant,
            "channel": c.channel,
            "our_address": c.our_address,
            "profile_name": name,
            "last_message_at": c.last_message_at,
            "last_body": c.last_body,
            "last_direction": c.last_direction,
            "message_count": c.message_count,
            "unread": c.unread_count,
            "unread_count": mine.get(c.id, c.unread_count),
            "opted_out": opted_out_at is not None,
            "status": c.status,
            "snoozed_until": c.snoozed_until,
            "assignee_id": c.assignee_id,
            "assignee": (owner_name or owner_email.split("@", 1)[0]) if owner_email else None,
            "priority": c.priority,
            "labels": names.get(c.id, []),
        }
        for c, name, opted_out_at, owner_email, owner_name in page
    ]
    nxt = None
    if len(rows) > limit:
        last = rows[limit - 1][0]
        nxt = encode_cursor(last.last_message_at, last.id)
    return items, nxt


def _label_id(session: Session, name: str) -> int | None:
    """The id of the label with this name, ignoring case (as inbox.labels compares them)."""
    key = " ".join(name.split()).casefold()
    # Text no label's name can hold (a NUL byte) is not sent to the database at all.
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in key):
        return None
    return session.scalar(select(Label.id).where(Label.key == key))


def _label_names(session: Session, conversation_ids: list[int]) -> dict[int, list[str]]:
    """The label names on each of these conversation rows, by name (one query)."""
    names: dict[int, list[str]] = {}
    if not conversation_ids:
        return names
    for conversation_id, name in session.execute(
        select(ConversationLabel.conversation_id, Label.name)
        .join(Label, Label.id == ConversationLabel.label_id)
        .where(ConversationLabel.conversation_id.in_(conversation_ids))
        .order_by(Label.key)
    ):
        names.setdefault(conversation_id, []).append(name)
    return names


def labels_of(session: Session, participant: str) -> list[Label]:
    """The labels on a customer's conversations (all their rows), by name."""
    return list(
        session.scalars(
            select(Label)
            .where(
                Label.id.in_(
                    select(ConversationLabel.label_id)
                    .join(Conversation, Conversation.id == ConversationLabel.conversation_id)
                    .where(Conversation.participant == participant)
                )
            )
            .order_by(Label.key)
        )
    )


def label_names_of(session: Session, participant: str) -> list[str]:
    """The names of `labels_of`."""
    return [label.name for label in labels_of(session, participant)]


def thread(
    session: Session, participant: str, *, limit: int = MAX_LIMIT, before: str | None = None
) -> tuple[list[MessageOut], str | None, bool]:
    """Messages with one participant, oldest first (the latest `limit` before `before`)."""
    query = select(*_LISTED).where(Message.participant == participant)
    if before:
        query = query.where(Message.id < cursor_id(before, "before"))
    rows = _listed(session, query.order_by(Message.id.desc()).limit(limit + 1))
    page = list(reversed(rows[:limit]))
    older = encode_cursor(page[0].id) if len(rows) > limit and page else None
    opted_out = session.scalar(
        select(func.count(Contact.id)).where(
            Contact.phone == participant, Contact.opted_out_at.is_not(None)
        )
    )
    return page, older, bool(opted_out)


def stats(session: Session, days: int = 30) -> dict[str, Any]:
    """Totals, per-status counts and per-day counts over the last `days` days."""
    since = (utcnow() - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    by_status = dict(
        session.execute(
            select(Message.status, func.count(Message.id))
            .where(Message.created_at >= since)
            .group_by(Message.status)
        ).all()
    )
    day = (
        func.date(Message.created_at)
        if session.get_bind().dialect.name == "sqlite"
        else (func.to_char(func.timezone("UTC", Message.created_at), "YYYY-MM-DD"))
    )
    per_day: dict[str, dict[str, int]] = {}
    for d, direction, n in session.execute(
        select(day, Message.direction, func.count(Message.id))
        .where(Message.created_at >= since)
        .group_by(day, Message.direction)
    ).all():
        per_day.setdefault(str(d), {"inbound": 0, "outbound": 0})[direction] = int(n)
    return {
        "counts": counts(session),
        "by_status": {k: int(v) for k, v in by_status.items()},
        "by_day": [{"day": d, **v} for d, v in sorted(per_day.items())],
        "days": days,
    }


def delivery_states(session: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Status, SID and Twilio error of these messages (for domains that sent them)."""
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = session.execute(
            select(
                Message.id,
                Message.sid,
                Message.status,
                Message.error_code,
                Message.error_message,
                Message.updated_at,
            ).where(Message.id.in_(chunk))
        ).all()
        for row in rows:
            out[row.id] = {
                "sid": row.sid,
                "status": row.status,
                "error_code": row.error_code,
                "error_message": row.error_message,
                "updated_at": row.updated_at,
            }
    return out
