"""Private notes in a conversation's thread, and the @mentions that call a colleague in.

A note is for the team only: it is a row here and an audit entry, never a message, so
nothing of it reaches Twilio. `@Name` in its body names an active colleague by their
display name (case-insensitive; the longest name that fits wins, so "@Anna Nowak" is not
"@Anna") or by their e-mail address's local part; each person named gets one mention,
which stays unread until they mark it read. Naming yourself or nobody known creates none.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from relaydesk.auth.models import User
from relaydesk.auth.service import Principal
from relaydesk.core import audit
from relaydesk.core.db import utcnow
from relaydesk.core.errors import Invalid, NotFound
from relaydesk.core.i18n import N_
from relaydesk.core.pagination import cursor_id, encode_cursor
from relaydesk.inbox.models import ConversationNote, Mention
from relaydesk.messaging.models import Conversation
from relaydesk.messaging.states import conversations_of, user_name

MAX_BODY = 4000
# Tabs and line ends are text; other control characters (NUL above all) are not.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class NoteOut(BaseModel):
    """A private note, shaped to merge with the thread's messages and events by time."""

    id: int
    kind: Literal["note"] = "note"
    participant: str
    author: str = Field(description="the author's name when they wrote it")
    author_id: int | None = Field(description="null once the author's account is deleted")
    body: str
    created_at: datetime
    mentions: list[str] = Field(description="the names of the colleagues it mentions")


class MentionOut(BaseModel):
    """A note that names the caller: where, by whom, and whether they have read it."""

    id: int
    participant: str
    author: str
    author_id: int | None
    created_at: datetime
    read_at: datetime | None
    note: NoteOut


def _author(session: Session, principal: Principal) -> tuple[int, str]:
    """(id, name) of the person writing; a token that acts as nobody cannot write notes."""
    name = user_name(session, principal.user_id)
    if principal.user_id is None or name is None:
        raise Invalid(
            N_(
                "A note needs an author: this token acts as nobody "
                "(create one that acts as a user: relaydesk token create NAME --user EMAIL)"
            ),
            params={},
        )
    return principal.user_id, name


def _check_body(body: str) -> None:
    if not body.strip():
        raise Invalid(N_("A note cannot be empty"), params={}, field="body")
    if len(body) > MAX_BODY:
        raise Invalid(
            N_("A note has at most %(max)s characters"), params={"max": MAX_BODY}, field="body"
        )
    if _CONTROL.search(body):
        raise Invalid(
            N_("A note cannot contain control characters (other than tabs and line ends)"),
            params={},
            field="body",
        )


def _handles(session: Session) -> list[tuple[str, int]]:
    """(handle, user id) for every active user: display name and e-mail local part."""
    handles: list[tuple[str, int]] = []
    for user in session.scalars(select(User).where(User.is_active.is_(True))):
        for handle in (user.display_name, user.email.split("@", 1)[0]):
            if handle:  # an empty handle would make every lone @ a mention
                handles.append((handle, user.id))
    # Longest first, so "@Anna Nowak" names Anna Nowak even when someone is called Anna.
    handles.sort(key=lambda handle: len(handle[0]), reverse=True)
    return handles


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def mentioned(body: str, handles: Sequence[tuple[str, int]]) -> list[int]:
    """The ids of the users a body names with @, each once, in the order first named.

    An @ inside a word (an e-mail address) names nobody; the name must end where a word
    does (@Anna is not @Annabelle). Two people with the same name are both named.
    """
    found: list[int] = []
    for at in (i for i, char in enumerate(body) if char == "@"):
        if at > 0 and _is_word(body[at - 1]):
            continue
        start = at + 1
        best: int | None = None
        for handle, user_id in handles:
            if best is not None and len(handle) < best:
                break
            end = start + len(handle)
            if body[start:end].casefold() != handle.casefold():
                continue
            if end < len(body) and _is_word(body[end]):
                continue
            best = len(handle)
            if user_id not in found:
                found.append(user_id)
    return found


def add_note(session: Session, participant: str, body: str, principal: Principal) -> NoteOut:
    """Write a private note in a customer's conversation; mentions and an audit entry."""
    _check_body(body)
    author_id, author = _author(session, principal)
    first = conversations_of(session, participant)[0]
    note = ConversationNote(
        conversation_id=first.id,
        participant=participant,
        author_id=author_id,
        author=author,
        body=body,
        created_at=utcnow(),
    )
    session.add(note)
    session.flush()
    named = [uid for uid in mentioned(body, _handles(session)) if uid != author_id]
    for user_id in named:
        session.add(
            Mention(
                note_id=note.id,
                user_id=user_id,
                participant=participant,
                created_at=note.created_at,
            )
        )
    names = [user_name(session, uid) or "" for uid in named]
    audit.record(
        session,
        principal.actor,
        "conversation.note",
        participant,
        {"note_id": note.id, "mentions": names},
    )
    session.flush()
    return _note_out(note, names)


def _note_out(note: ConversationNote, mentions: list[str]) -> NoteOut:
    return NoteOut(
        id=note.id,
        participant=note.participant,
        author=note.author,
        author_id=note.author_id,
        body=note.body,
        created_at=note.created_at,
        mentions=mentions,
    )


def _mention_names(session: Session, note_ids: Iterable[int]) -> dict[int, list[str]]:
    """The names each note mentions, in the order they were mentioned."""
    ids = list(note_ids)
    names: dict[int, list[str]] = defaultdict(list)
    if not ids:
        return names
    rows = session.execute(
        select(Mention.note_id, User.name, User.email)
        .join(User, User.id == Mention.user_id)
        .where(Mention.note_id.in_(ids))
        .order_by(Mention.id)
    )
    for note_id, name, email in rows:
        names[note_id].append(name or email.split("@", 1)[0])
    return names


def notes_of(session: Session, participant: str, limit: int = 500) -> list[NoteOut]:
    """A customer's notes, oldest first (the latest `limit`); NotFound without a conversation."""
    known = session.scalar(
        select(Conversation.id).where(Conversation.participant == participant).limit(1)
    )
    if known is None:
        raise NotFound(
            N_("No conversation with %(participant)s"), params={"participant": participant}
        )
    rows = list(
        session.scalars(
            select(ConversationNote)
            .where(ConversationNote.participant == participant)
            .order_by(ConversationNote.id.desc())
            .limit(limit)
        )
    )
    rows.reverse()
    names = _mention_names(session, (row.id for row in rows))
    return [_note_out(row, names.get(row.id, [])) for row in rows]


def _owner(principal: Principal) -> int:
    """The caller's user id; mentions belong to a person, not to a token of nobody's."""
    if principal.user_id is None:
        raise Invalid(N_("Mentions belong to a user: this token acts as nobody"), params={})
    return principal.user_id


def unread_count(session: Session, user_id: int) -> int:
    """How many mentions `user_id` has not read (the panel's badge)."""
    return (
        session.scalar(
            select(func.count(Mention.id)).where(
                Mention.user_id == user_id, Mention.read_at.is_(None)
            )
        )
        or 0
    )


def mentions_of(
    session: Session,
    principal: Principal,
    *,
    unread: bool = False,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[MentionOut], str | None, int]:
    """The caller's mentions newest first: (page, cursor for older ones, unread count)."""
    user_id = _owner(principal)
    query = (
        select(Mention, ConversationNote)
        .join(ConversationNote, ConversationNote.id == Mention.note_id)
        .where(Mention.user_id == user_id)
        .order_by(Mention.id.desc())
        .limit(limit + 1)
    )
    if unread:
        query = query.where(Mention.read_at.is_(None))
    if cursor:
        query = query.where(Mention.id < cursor_id(cursor))
    rows = list(session.execute(query).all())
    more = len(rows) > limit
    rows = rows[:limit]
    names = _mention_names(session, {note.id for _, note in rows})
    items = [
        MentionOut(
            id=mention.id,
            participant=mention.participant,
            author=note.author,
            author_id=note.author_id,
            created_at=mention.created_at,
            read_at=mention.read_at,
            note=_note_out(note, names.get(note.id, [])),
        )
        for mention, note in rows
    ]
    nxt = encode_cursor(rows[-1][0].id) if more and rows else None
    return items, nxt, unread_count(session, user_id)


def mark_read(
    session: Session,
    principal: Principal,
    *,
    ids: Sequence[int] | None = None,
    participant: str | None = None,
) -> tuple[int, int]:
    """Mark the caller's mentions read (these ids, or all in one conversation).

    Answers (how many were marked, how many unread are left).

    An id that is not one of the caller's own mentions is NotFound, and nothing changes.
    """
    user_id = _owner(principal)
    if (ids is None) == (participant is None):
        raise Invalid(N_("Give either ids or participant"), params={})
    mine = Mention.user_id == user_id
    if ids is not None:
        wanted = set(ids)
        own = set(session.scalars(select(Mention.id).where(mine, Mention.id.in_(wanted))))
        missing = sorted(wanted - own)
        if missing:
            raise NotFound(
                N_("These are not mentions of yours: %(ids)s"),
                params={"ids": [str(i) for i in missing[:20]]},
                field="ids",
            )
        which: ColumnElement[bool] = Mention.id.in_(wanted)
    else:
        which = Mention.participant == participant
    result = session.execute(
        update(Mention)
        .where(mine, which, Mention.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0), unread_count(session, user_id)
