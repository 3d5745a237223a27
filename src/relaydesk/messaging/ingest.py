"""Set-based storage of inbound messages and status callbacks.

Both functions take a batch so that the webhook writer can store many webhooks in one
transaction; every statement is an index lookup, so the cost does not grow with history.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Boolean, Integer, Text, bindparam, case, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from relaydesk.channels.twilio.errors import describe_error
from relaydesk.channels.twilio.parsing import InboundRecord, StatusRecord, parse_inbound
from relaydesk.contacts import consent
from relaydesk.contacts.models import Contact
from relaydesk.core.db import Base, UTCDateTime, utcnow
from relaydesk.core.tasks import enqueue_after_commit
from relaydesk.messaging import assignment, hooks, outgoing, states
from relaydesk.messaging import status as st
from relaydesk.messaging.models import (
    Conversation,
    Message,
    MessageCounter,
    MessageStatus,
    Priority,
)

log = logging.getLogger(__name__)


def read_inbound(params: dict[str, str]) -> InboundRecord:
    """An inbound webhook's record, with the consent keyword it carries (STOP, START, HELP)."""
    record = parse_inbound(params)
    record.opt_out = consent.opt_out_keyword(record.body, record.raw.get("OptOutType"))
    return record


def opt_out_recipient(session: Session, message_id: int, reason: str) -> None:
    """Twilio says the recipient of this message unsubscribed: never message them again."""
    contact_id = session.scalar(
        select(Conversation.contact_id)
        .join(Message, Message.conversation_id == Conversation.id)
        .where(Message.id == message_id)
    )
    if contact_id is not None:
        consent.opt_out(session, contact_id, reason)


@lru_cache(maxsize=4)
def _inbound_statements(dialect: str) -> tuple[Any, Any, Any]:
    """Upserts and insert of the inbound path, built once per dialect.

    Executed with a list of parameter sets they run as "insertmanyvalues" batches
    whose SQL is compiled once, instead of a new multi-row VALUES per batch.
    """
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    tables = Base.metadata.tables
    contacts, conversations, messages = (
        tables["contacts"],
        tables["conversations"],
        tables["messages"],
    )
    new_contact = insert(contacts)
    upsert_contact = new_contact.on_conflict_do_update(
        index_elements=["phone", "channel"],
        set_={
            "profile_name": func.coalesce(
                new_contact.excluded.profile_name, contacts.c.profile_name
            ),
            "updated_at": new_contact.excluded.updated_at,
        },
    ).returning(contacts.c.id, contacts.c.phone, contacts.c.channel)
    new_conversation = insert(conversations)
    upsert_conversation = new_conversation.on_conflict_do_update(
        index_elements=["contact_id", "our_address"],
        set_={"updated_at": new_conversation.excluded.updated_at},
    ).returning(
        conversations.c.id,
        conversations.c.contact_id,
        conversations.c.our_address,
        conversations.c.participant,
        # What the rows are now: new (inherit their customer's owner), or closed (reopen).
        conversations.c.message_count,
        conversations.c.assignee_id,
        conversations.c.priority,
        conversations.c.status,
    )
    insert_message = (
        insert(messages)
        .on_conflict_do_nothing(index_elements=["sid"])
        .returning(messages.c.id, messages.c.sid, messages.c.conversation_id)
    )
    return upsert_contact, upsert_conversation, insert_message


def store_inbound(session: Session, records: list[InboundRecord]) -> list[int]:
    """Store new inbound messages once per SID; returns the ids of the rows created."""
    unique: dict[str, InboundRecord] = {}
    for rec in records:
        unique.setdefault(rec.sid, rec)
    if not unique:
        return []
    conn = session.connection()
    existing = set(conn.scalars(select(Message.sid).where(Message.sid.in_(list(unique)))))
    fresh = [rec for sid, rec in unique.items() if sid not in existing]
    if not fresh:
        return []
    upsert_contact, upsert_conversation, insert_message = _inbound_statements(conn.dialect.name)
    now = utcnow()

    contacts: dict[tuple[str, str], str | None] = {}
    for rec in fresh:
        key = (rec.participant, rec.contact_channel)
        contacts[key] = rec.profile_name or contacts.get(key)
    contact_ids = {
        (row.phone, row.channel): row.id
        for row in conn.execute(
            upsert_contact,
            [
                {
                    "phone": p,
                    "channel": c,
                    "profile_name": name,
                    "created_at": now,
                    "updated_at": now,
                }
                for (p, c), name in contacts.items()
            ],
        )
    }

    conv_keys: dict[tuple[int, str], InboundRecord] = {}
    for rec in fresh:
        conv_keys.setdefault(
            (contact_ids[(rec.participant, rec.contact_channel)], rec.to_addr), rec
        )
    conv_rows = {
        (row.contact_id, row.our_address): row
        for row in conn.execute(
            upsert_conversation,
            [
                {
                    "contact_id": cid,
                    "our_address": our,
                    "participant": rec.participant,
                    "channel": rec.contact_channel,
                    "message_count": 0,
                    "unread_count": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for (cid, our), rec in conv_keys.items()
            ],
        )
    }

    conv_ids = {key: row.id for key, row in conv_rows.items()}
    # A customer's first message on another channel or number: its row takes their owner.
    states.inherit(
        session,
        sorted(
            (row.id, row.participant)
            for row in conv_rows.values()
            if row.message_count == 0 and row.assignee_id is None and row.priority == Priority.NONE
        ),
    )

    # A message no handler wants is done when stored: no follow-up job at all. One whose
    # handlers all have their work done in this transaction (an automatic answer's run)
    # is done once they did it; the others wait for the follow-up job.
    handlers = {rec.sid: hooks.wanting(rec) for rec in fresh}
    at_store = {sid for sid, names in handlers.items() if hooks.all_at_store(names)}
    wanted = {sid for sid, names in handlers.items() if names and sid not in at_store}
    rows = []
    for rec in fresh:
        cid = conv_ids[(contact_ids[(rec.participant, rec.contact_channel)], rec.to_addr)]
        rows.append(
            {
                "sid": rec.sid,
                "direction": "inbound",
                "channel": rec.channel,
                "from_addr": rec.from_addr,
                "to_addr": rec.to_addr,
                "participant": rec.participant,
                "conversation_id": cid,
                "body": rec.body,
                # The media handler replaces these with the stored files; Twilio's
                # addresses stay in `raw` only.
                "media": [
                    {"content_type": m.get("content_type") or None, "state": "pending"}
                    for m in rec.media
                ],
                "num_media": len(rec.media),
                "status": MessageStatus.RECEIVED,
                "error_code": None,
                "error_message": None,
                "num_segments": rec.num_segments,
                "encoding": None,
                "source": "customer",
                "messaging_service_sid": rec.raw.get("MessagingServiceSid") or None,
                "raw": rec.raw,
                "attempts": 0,
                "processed_at": None if rec.sid in wanted else rec.received_at,
                "created_at": rec.received_at,
                "updated_at": rec.received_at,
                "status_changed_at": rec.received_at,
            }
        )
    inserted = conn.execute(insert_message, rows).all()
    if not inserted:
        return []
    by_sid = {rec.sid: rec for rec in fresh}
    # Before the state changes below: an endpoint hears of the message, then of its effects.
    outgoing.received(session, rows, {row.sid: row.id for row in inserted})

    per_conv: dict[int, list[tuple[int, InboundRecord]]] = {}
    for row in inserted:
        per_conv.setdefault(row.conversation_id, []).append((row.id, by_sid[row.sid]))
    bump_conversations(
        session,
        [
            {
                "cid": cid,
                "n": len(items),
                "mid": max(items, key=lambda it: it[0])[0],
                "at": max(items, key=lambda it: it[0])[1].received_at,
                "body": _preview(max(items, key=lambda it: it[0])[1]),
                "direction": "inbound",
                "unread": len(items),
            }
            for cid, items in per_conv.items()
        ],
    )
    bump_counter(session, "inbound", len(inserted))
    # The customer wrote again: a resolved or snoozed conversation is open once more.
    latest = max(rec.received_at for rec in fresh)
    closed = {row.id for row in conv_rows.values() if row.status in states.CLOSED}
    states.reopen(session, [cid for cid in per_conv if cid in closed], latest)
    # Nobody owns it: the next operator online gets it, when round-robin is on.
    assignment.assign_waiting(session, list(per_conv), latest)

    keywords = [(by_sid[row.sid], by_sid[row.sid].opt_out) for row in inserted]
    changed: dict[str, list[int]] = {"STOP": [], "START": []}
    for rec, keyword in keywords:
        if keyword not in ("STOP", "START"):
            continue
        cid = contact_ids[(rec.participant, rec.contact_channel)]
        session.execute(
            update(Contact)
            .where(Contact.id == cid)
            .values(
                opted_out_at=rec.received_at if keyword == "STOP" else None,
                opt_out_reason=f"replied {rec.body.strip()[:20]}" if keyword == "STOP" else None,
                **({"opted_in_at": rec.received_at} if keyword == "START" else {}),
            )
        )
        changed[keyword].append(cid)
    consent.emit_changes(session, "contact.opted_out", changed["STOP"])
    consent.emit_changes(session, "contact.opted_in", changed["START"])
    ids = [row.id for row in inserted]
    follow_up = [row.id for row in inserted if row.sid in wanted]
    follow_up += _handle_at_store(
        session, [row for row in inserted if row.sid in at_store], by_sid, handlers
    )
    if follow_up:
        enqueue_after_commit(session, "messaging.inbound_received", follow_up)
    return ids


def _handle_at_store(
    session: Session,
    inserted: list[Any],
    by_sid: dict[str, InboundRecord],
    handlers: dict[str, list[str]],
) -> list[int]:
    """Run the handlers that work while a message is stored, set-wise, in a savepoint;
    returns the ids of messages left to the follow-up job (their handlers failed here)."""
    if not inserted:
        return []
    groups: dict[tuple[str, ...], list[hooks.NewInbound]] = {}
    for row in inserted:
        rec = by_sid[row.sid]
        groups.setdefault(tuple(handlers[row.sid]), []).append(
            hooks.NewInbound(row.id, row.conversation_id, rec.participant, rec.body, rec.raw)
        )
    ids = [row.id for row in inserted]
    try:
        with session.begin_nested():
            for names, messages in groups.items():
                hooks.run_at_store(session, list(names), messages)
    except Exception:
        log.exception("inbound handlers failed while storing %s; the follow-up job runs them", ids)
        session.execute(
            update(Message)
            .where(Message.id.in_(ids))
            .values(processed_at=None)
            .execution_options(synchronize_session=False)
        )
        return ids
    return []


def _preview(rec: InboundRecord) -> str:
    if rec.body:
        return rec.body[:200]
    if rec.media:
        return f"[{len(rec.media)} attachment(s)]"
    if rec.raw.get("Latitude") and rec.raw.get("Longitude"):
        return f"[location] {rec.raw.get('Label') or rec.raw.get('Address') or ''}".strip()[:200]
    return ""


_conv_bump = (
    update(Conversation)
    .where(Conversation.id == bindparam("cid"))
    .values(
        message_count=Conversation.message_count + bindparam("n"),
        unread_count=Conversation.unread_count + bindparam("unread"),
        last_message_id=case(
            (func.coalesce(Conversation.last_message_id, 0) < bindparam("mid"), bindparam("mid")),
            else_=Conversation.last_message_id,
        ),
        last_message_at=case(
            (
                func.coalesce(Conversation.last_message_id, 0) < bindparam("mid"),
                bindparam("at", type_=UTCDateTime()),
            ),
            else_=Conversation.last_message_at,
        ),
        last_body=case(
            (func.coalesce(Conversation.last_message_id, 0) < bindparam("mid"), bindparam("body")),
            else_=Conversation.last_body,
        ),
        last_direction=case(
            (
                func.coalesce(Conversation.last_message_id, 0) < bindparam("mid"),
                bindparam("direction"),
            ),
            else_=Conversation.last_direction,
        ),
        last_inbound_at=case(
            (bindparam("direction") == "inbound", bindparam("at", type_=UTCDateTime())),
            else_=Conversation.last_inbound_at,
        ),
    )
    .execution_options(synchronize_session=False)
)


def bump_conversations(session: Session, params: list[dict[str, Any]]) -> None:
    """Add new messages to their conversations' counters and last-message preview."""
    if params:
        session.connection().execute(_conv_bump, params)


_counter_bump = (
    update(MessageCounter)
    .where(MessageCounter.direction == bindparam("dir"))
    .values(count=MessageCounter.count + bindparam("delta"))
    .execution_options(synchronize_session=False)
)


def bump_counter(session: Session, direction: str, delta: int) -> None:
    """Keep the per-direction message totals true (same transaction as the change)."""
    session.connection().execute(_counter_bump, {"dir": direction, "delta": delta})


def lock_sids(session: Session, sids: list[str]) -> None:
    """Serialise work on these SIDs across transactions (PostgreSQL; SQLite has one writer).

    A status callback can arrive while the send that produced it is still storing the
    SID. Either the callback's transaction sees the SID, or the sender's replay sees
    the callback's event; without this lock both could miss each other.
    """
    if session.get_bind().dialect.name != "postgresql" or not sids:
        return
    # One order everywhere (no deadlocks), and one statement for the whole batch.
    session.execute(_advisory_locks, {"sids": sorted(set(sids))})


# The locks are taken in the array's order: the subquery keeps it (WITH ORDINALITY,
# ORDER BY) and OFFSET 0 keeps the planner from folding it into the outer query.
_advisory_locks = text(
    "SELECT pg_advisory_xact_lock(hashtext(t.sid)) FROM ("
    "SELECT u.sid FROM unnest(CAST(:sids AS text[])) WITH ORDINALITY AS u(sid, n) "
    "ORDER BY u.n OFFSET 0) AS t"
)


def record_statuses(session: Session, records: list[StatusRecord]) -> int:
    """Keep every callback; move each message's status forward only. Returns moves applied.

    Set-wise: the moves are worked out per message in order (a batch often holds a
    message's "sent" and its "delivered"), then written with one statement for all the
    messages, guarded by the status read here; the statuses are read back to tell which
    moves took (a writer that does not take the SIDs' lock may have been first).
    """
    if not records:
        return 0
    sids = list({r.sid for r in records})
    lock_sids(session, sids)
    current: dict[str, tuple[int, str]] = {
        row.sid: (row.id, row.status)
        for row in session.execute(
            select(Message.sid, Message.id, Message.status).where(Message.sid.in_(sids))
        )
    }
    read = {mid: status for mid, status in current.values()}
    moves: dict[int, dict[str, Any]] = {}  # message id -> what it becomes
    moved_by: list[int | None] = []  # per record: the message its move is for
    unsubscribed: set[int] = set()  # a move said the recipient unsubscribed
    for rec in records:
        found = current.get(rec.sid)
        if found is None or not st.can_move(found[1], rec.status):
            moved_by.append(None)
            continue
        mid = found[0]
        current[rec.sid] = (mid, rec.status)
        move = moves.setdefault(
            mid,
            {"mid": mid, "old": read[mid], "final": False, "code": None, "text": None},
        )
        move["new"], move["at"] = MessageStatus(rec.status), rec.received_at
        move["final"] = move["final"] or rec.status in st.FINAL
        if rec.error_code:
            move["code"], move["text"] = rec.error_code, describe_error(rec.error_code)
        if consent.means_unsubscribed(rec.error_code):
            unsubscribed.add(mid)
        moved_by.append(mid)
    took: set[int] = set()
    if moves:
        moved = session.connection().execute(_move_status, list(moves.values())).rowcount
        if moved == len(moves):
            took = set(moves)  # each guarded move changed its row: all of them took
        else:
            now = dict(
                session.execute(
                    select(Message.id, Message.status).where(Message.id.in_(moves))
                ).all()
            )
            took = {mid for mid, move in moves.items() if now.get(mid) == move["new"]}
        for mid in sorted(took & unsubscribed):
            opt_out_recipient(session, mid, f"Twilio error {consent.UNSUBSCRIBED_ERROR}")
    events = []
    applied = 0
    for rec, target in zip(records, moved_by, strict=True):
        moved = target is not None and target in took
        applied += moved
        found = current.get(rec.sid)
        events.append(
            {
                "message_id": found[0] if found else None,
                "sid": rec.sid,
                "status": rec.status[:20],
                "error_code": rec.error_code,
                "applied": moved,
                "idempotency_token": rec.idempotency_token,
                "payload": rec.raw,
                "received_at": rec.received_at,
            }
        )
    session.connection().execute(Base.metadata.tables["message_events"].insert(), events)
    outgoing.messages(
        session, "message.status", [mid for mid in moved_by if mid is not None and mid in took]
    )
    return applied


_messages = Base.metadata.tables["messages"]
# One message's status moves (many at once with executemany): only from the status read
# under the SIDs' lock; an error code and its text only when the callback has one; a
# final status needs no more questions to Twilio.
_move_status = (
    update(_messages)
    .where(_messages.c.id == bindparam("mid"), _messages.c.status == bindparam("old"))
    .values(
        status=bindparam("new"),
        status_changed_at=bindparam("at"),
        updated_at=bindparam("at"),
        status_check_at=case(
            (bindparam("final", type_=Boolean), None), else_=_messages.c.status_check_at
        ),
        error_code=func.coalesce(bindparam("code", type_=Integer), _messages.c.error_code),
        error_message=func.coalesce(bindparam("text", type_=Text), _messages.c.error_message),
    )
)


def apply_status(
    session: Session,
    message_id: int,
    current: str,
    new: str,
    error_code: int | None,
    at: datetime,
) -> bool:
    """Move one message to `new` if the order allows; True when it moved."""
    if not st.can_move(current, new):
        return False
    values: dict[str, Any] = {
        "status": MessageStatus(new),
        "status_changed_at": at,
        "updated_at": at,
    }
    if new in st.FINAL:
        values["status_check_at"] = None  # nothing more to ask Twilio
    if error_code:
        values["error_code"] = error_code
        values["error_message"] = describe_error(error_code)
    result = session.execute(
        update(Message)
        .where(Message.id == message_id, Message.status == current)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    if consent.means_unsubscribed(error_code):
        opt_out_recipient(session, message_id, f"Twilio error {error_code}")
    return True
