"""Labels on conversations: admins keep the list, operators put them on conversations.

A label's name is unique ignoring case (`Label.key` is the name case-folded); a
customer's conversation is every conversation row with their number, so a customer's
labels are set on all their rows at once. Each change of a conversation's labels is an
event in its thread and an entry in the audit log; so is each change to the list.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Any

from sqlalchemy import delete, distinct, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from relaydesk.auth.service import Principal
from relaydesk.core import audit
from relaydesk.core.db import utcnow
from relaydesk.core.errors import Conflict, Invalid, NotFound
from relaydesk.core.i18n import N_
from relaydesk.messaging import queries, states
from relaydesk.messaging.models import Conversation, ConversationEvent, ConversationLabel, Label

MAX_NAME = 50
MAX_PER_CONVERSATION = 20
# New labels take the palette's least used colour, so the first eight all differ.
PALETTE = (
    "#1f77b4",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#8c564b",
    "#e377c2",
)
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
# Line and paragraph breaks, control characters and lone surrogates (which no database
# stores as text); format characters only where they reorder text (bidi overrides).
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def one_line(text: str) -> bool:
    """Whether `text` is one line without control characters, lone surrogates or bidi overrides."""
    return not any(unicodedata.category(ch) in _REFUSED_CATEGORIES or ch in _BIDI for ch in text)


def key_of(name: str) -> str:
    """How a name is compared: case-folded, whitespace runs as one space."""
    return " ".join(name.split()).casefold()


def clean_name(name: str, field: str = "name") -> str:
    """A label's name as stored: one line, trimmed, 1 to MAX_NAME characters."""
    if not one_line(name):
        raise Invalid(
            N_("A label's name is one line of text without control characters"),
            params={},
            field=field,
        )
    name = " ".join(name.split())
    if not name:
        raise Invalid(N_("A label needs a name"), params={}, field=field)
    if len(name) > MAX_NAME or len(key_of(name)) > MAX_NAME:
        raise Invalid(
            N_("A label's name has at most %(max)s characters"),
            params={"max": MAX_NAME},
            field=field,
        )
    return name


def clean_colour(colour: str) -> str:
    """A colour as stored: "#rrggbb" in lower case."""
    if not _COLOUR.fullmatch(colour):
        raise Invalid(N_("A colour is written #rrggbb, e.g. #1f77b4"), params={}, field="colour")
    return colour.lower()


def _free_colour(session: Session) -> str:
    """The palette's least used colour (the first of the least used)."""
    used = Counter(session.scalars(select(Label.colour)))
    return min(PALETTE, key=lambda colour: (used[colour], PALETTE.index(colour)))


def _taken(session: Session, name: str, but: int | None = None) -> None:
    """Conflict when another label has this name, ignoring case."""
    query = select(Label.name).where(Label.key == key_of(name))
    if but is not None:
        query = query.where(Label.id != but)
    existing = session.scalar(query)
    if existing is not None:
        raise Conflict(
            N_("A label named %(name)s exists already"), params={"name": existing}, field="name"
        )


def _flush_unique(session: Session, name: str) -> None:
    """Flush; a label of the same name written meanwhile by someone else is a Conflict."""
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(
            N_("A label named %(name)s exists already"), params={"name": name}, field="name"
        ) from None


def list_labels(session: Session) -> list[tuple[Label, int]]:
    """Every label by name, with how many customers' conversations carry it."""
    customers = func.count(distinct(Conversation.participant))
    rows = session.execute(
        select(Label, customers)
        .outerjoin(ConversationLabel, ConversationLabel.label_id == Label.id)
        .outerjoin(Conversation, Conversation.id == ConversationLabel.conversation_id)
        .group_by(Label.id)
        .order_by(Label.key)
    ).all()
    return [(label, int(count)) for label, count in rows]


def usage(session: Session, label_id: int) -> int:
    """How many customers' conversations carry one label."""
    count = session.scalar(
        select(func.count(distinct(Conversation.participant)))
        .join(ConversationLabel, ConversationLabel.conversation_id == Conversation.id)
        .where(ConversationLabel.label_id == label_id)
    )
    return int(count or 0)


def get_label(session: Session, label_id: int, *, lock: bool = False) -> Label:
    """One label; NotFound when no label has this id."""
    label = session.get(Label, label_id, with_for_update=True if lock else None)
    if label is None:
        raise NotFound(N_("Label %(id)s does not exist"), params={"id": label_id})
    return label


def create_label(session: Session, name: str, colour: str | None, actor: str) -> Label:
    """A new label (audited); without a colour, the palette's least used one."""
    name = clean_name(name)
    colour = clean_colour(colour) if colour is not None else _free_colour(session)
    _taken(session, name)
    label = Label(name=name, key=key_of(name), colour=colour, created_at=utcnow())
    session.add(label)
    _flush_unique(session, name)
    audit.record(
        session, actor, "label.create", f"label:{label.id}", {"name": name, "colour": colour}
    )
    return label


def update_label(
    session: Session, label_id: int, name: str | None, colour: str | None, actor: str
) -> Label:
    """Rename or recolour a label (audited); what is None stays as it is."""
    new_name = clean_name(name) if name is not None else None
    new_colour = clean_colour(colour) if colour is not None else None
    label = get_label(session, label_id, lock=True)
    changes: dict[str, Any] = {}
    if new_name is not None and new_name != label.name:
        _taken(session, new_name, but=label.id)
        changes["name"] = {"from": label.name, "to": new_name}
        label.name, label.key = new_name, key_of(new_name)
    if new_colour is not None and new_colour != label.colour:
        changes["colour"] = {"from": label.colour, "to": new_colour}
        label.colour = new_colour
    if changes:
        _flush_unique(session, label.name)
        audit.record(session, actor, "label.update", f"label:{label.id}", changes)
    return label


def delete_label(session: Session, label_id: int, principal: Principal) -> None:
    """Delete a label and take it off every conversation (an event in each thread, audited)."""
    label = get_label(session, label_id, lock=True)
    carriers = session.execute(
        select(Conversation.participant, func.min(Conversation.id))
        .join(ConversationLabel, ConversationLabel.conversation_id == Conversation.id)
        .where(ConversationLabel.label_id == label.id)
        .group_by(Conversation.participant)
    ).all()
    actor_id, actor = states.actor_of(session, principal)
    now = utcnow()
    data = {"added": [], "removed": [label.name]}
    session.add_all(
        ConversationEvent(
            conversation_id=conversation_id,
            participant=participant,
            kind="labels",
            actor_id=actor_id,
            actor=actor,
            data=data,
            created_at=now,
        )
        for participant, conversation_id in carriers
    )
    session.execute(delete(ConversationLabel).where(ConversationLabel.label_id == label.id))
    session.delete(label)
    session.flush()
    audit.record(
        session,
        principal.actor,
        "label.delete",
        f"label:{label_id}",
        {"name": label.name, "colour": label.colour, "conversations": len(carriers)},
    )


def labels_on(session: Session, participant: str) -> list[Label]:
    """The labels on a customer's conversations, by name."""
    return queries.labels_of(session, participant)


def _wanted(session: Session, names: list[str]) -> list[Label]:
    """The labels these names mean (ignoring case); Invalid naming the unknown ones."""
    first: dict[str, str] = {}  # each name once, as first written
    for name in names:
        cleaned = clean_name(name, field="labels")
        first.setdefault(key_of(cleaned), cleaned)
    keys = list(first)
    if len(keys) > MAX_PER_CONVERSATION:
        raise Invalid(
            N_("A conversation carries at most %(max)s labels"),
            params={"max": MAX_PER_CONVERSATION},
            field="labels",
        )
    # FOR SHARE: a label cannot be deleted while it is being put on a conversation.
    found = {
        label.key: label
        for label in session.scalars(
            select(Label).where(Label.key.in_(keys)).with_for_update(read=True)
        )
    }
    unknown = [name for key, name in first.items() if key not in found]
    if unknown:
        raise Invalid(
            N_("No label is named %(names)s"),
            params={"names": unknown},
            field="labels",
        )
    return sorted((found[key] for key in keys), key=lambda label: label.key)


def set_labels(
    session: Session, participant: str, names: list[str], principal: Principal
) -> list[Label]:
    """Put exactly these labels on a customer's conversations; the labels now on.

    A change is an event in the thread ({"added": [...], "removed": [...]}, names) and an
    entry in the audit log; setting the labels already on records nothing.
    """
    wanted = _wanted(session, names)
    rows = states.conversations_of(session, participant)
    row_ids = [row.id for row in rows]
    wanted_ids = {label.id for label in wanted}
    before = labels_on(session, participant)
    present = {
        (row_id, label_id)
        for row_id, label_id in session.execute(
            select(ConversationLabel.conversation_id, ConversationLabel.label_id).where(
                ConversationLabel.conversation_id.in_(row_ids)
            )
        )
    }
    session.execute(
        delete(ConversationLabel).where(
            ConversationLabel.conversation_id.in_(row_ids),
            ConversationLabel.label_id.not_in(wanted_ids),
        )
    )
    # A customer's newer rows (a second channel) get the labels their other rows carry.
    session.add_all(
        ConversationLabel(conversation_id=row_id, label_id=label_id)
        for row_id in row_ids
        for label_id in sorted(wanted_ids)
        if (row_id, label_id) not in present
    )
    before_ids = {label.id for label in before}
    added = [label.name for label in wanted if label.id not in before_ids]
    removed = [label.name for label in before if label.id not in wanted_ids]
    if added or removed:
        actor_id, actor = states.actor_of(session, principal)
        data = {"added": added, "removed": removed}
        session.add(
            ConversationEvent(
                conversation_id=rows[0].id,
                participant=participant,
                kind="labels",
                actor_id=actor_id,
                actor=actor,
                data=data,
                created_at=utcnow(),
            )
        )
        audit.record(session, principal.actor, "conversation.labels", participant, data)
    session.flush()
    return wanted
