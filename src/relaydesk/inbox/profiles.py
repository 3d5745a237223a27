"""A customer's profile: their name, note, custom attributes and labels, and what they did.

A customer is a number (E.164) with a contact row on at least one channel. The profile
row (`ContactProfile`) holds what the team writes: a name that overrides the one the
customer gave (WhatsApp's ProfileName), a note and attribute values; it is made on the
first edit. The customer's labels are those of their conversations (`labels.set_labels`,
so a change is an event in the thread). Voice-bot calls and campaigns live in domains
above the inbox, which fill the profile's sections through `register_section`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relaydesk.auth.models import User
from relaydesk.auth.service import Principal
from relaydesk.contacts.models import Contact, ContactProfile
from relaydesk.core import audit
from relaydesk.core.db import dialect_insert, utcnow
from relaydesk.core.errors import Invalid, NotFound
from relaydesk.core.i18n import N_
from relaydesk.inbox import attributes, labels
from relaydesk.inbox.labels import one_line
from relaydesk.inbox.profile_schemas import (
    AttributeOut,
    CallItem,
    CampaignItem,
    ChannelOut,
    ConversationRef,
    ProfileOut,
    Section,
)
from relaydesk.messaging import queries, states
from relaydesk.messaging.models import Conversation

MAX_NAME = 200
MAX_NOTE = 5000
SECTION_LIMIT = 10
SECTIONS = ("calls", "campaigns")
# Line breaks and tabs belong in a note; other control characters and lone surrogates
# (which PostgreSQL cannot store) do not.
_NOTE_ALLOWED = frozenset("\n\t")

# (session, E.164 number, how many) → (how many there are, the newest `how many` items)
SectionProvider = Callable[[Session, str, int], tuple[int, list[Any]]]
_providers: dict[str, SectionProvider] = {}


def register_section(name: str, provider: SectionProvider) -> None:
    """Let a domain above the inbox fill a section of the profile ("calls", "campaigns")."""
    if name not in SECTIONS:
        raise ValueError(f"no profile section is called {name!r}")
    _providers[name] = provider


def _section(session: Session, name: str, number: str) -> tuple[int, list[Any]]:
    provider = _providers.get(name)
    return provider(session, number, SECTION_LIMIT) if provider else (0, [])


@dataclass(frozen=True)
class ProfileChange:
    """What an edit changes; None keeps a field (an empty name or note clears it)."""

    name: str | None = None
    note: str | None = None
    attributes: Mapping[str, object] | None = None  # a None value removes that one
    labels: list[str] | None = None  # exactly these, as on the conversations


def clean_name(raw: str) -> str | None:
    """A name as stored: one line, spaces collapsed; None (blank) means the customer's own."""
    if not one_line(raw.strip()):
        raise Invalid(
            N_("A name is one line of text without control characters"), params={}, field="name"
        )
    name = " ".join(raw.split())
    if len(name) > MAX_NAME:
        raise Invalid(
            N_("A name has at most %(max)s characters"), params={"max": MAX_NAME}, field="name"
        )
    return name or None


def clean_note(raw: str) -> str:
    """A note as stored: trimmed, line breaks as \\n, at most MAX_NOTE characters."""
    note = raw.replace("\r\n", "\n").replace("\r", "\n").strip()
    if any(ch not in _NOTE_ALLOWED and unicodedata.category(ch) in ("Cc", "Cs") for ch in note):
        raise Invalid(
            N_("A note cannot hold control characters (line breaks and tabs are fine)"),
            params={},
            field="note",
        )
    if len(note) > MAX_NOTE:
        raise Invalid(
            N_("A note has at most %(max)s characters"), params={"max": MAX_NOTE}, field="note"
        )
    return note


def _contacts(session: Session, number: str) -> list[Contact]:
    """The customer's contact rows (one per channel); NotFound for an unknown number."""
    rows = list(session.scalars(select(Contact).where(Contact.phone == number)))
    if not rows:
        raise NotFound(
            N_("No customer has the number %(participant)s"), params={"participant": number}
        )
    return sorted(rows, key=lambda row: row.channel)


def _given_name(contacts: Iterable[Contact]) -> str | None:
    """The name the customer gave most recently on any channel."""
    named = [row for row in contacts if row.profile_name and row.profile_name.strip()]
    if not named:
        return None
    newest = max(named, key=lambda row: (row.updated_at, row.id))
    return (newest.profile_name or "").strip() or None


def _row(session: Session, number: str) -> ContactProfile | None:
    return session.scalar(select(ContactProfile).where(ContactProfile.participant == number))


def name_of(session: Session, number: str, row: ContactProfile | None = None) -> str | None:
    """The customer's name: the edited one (of `row` when given), else the one they gave."""
    row = row or _row(session, number)
    if row is not None and row.name:
        return row.name
    return _given_name(session.scalars(select(Contact).where(Contact.phone == number)))


def edited_names(session: Session, numbers: list[str]) -> dict[str, str]:
    """The edited names of these customers (those that have one), by number."""
    if not numbers:
        return {}
    rows = session.execute(
        select(ContactProfile.participant, ContactProfile.name).where(
            ContactProfile.participant.in_(sorted(set(numbers))),
            ContactProfile.name.is_not(None),
        )
    )
    return {number: name for number, name in rows if name}


def template_values(session: Session, number: str) -> dict[str, str | None]:
    """The profile's variables for canned answers: contact.name and contact.<key> (None: none)."""
    row = _row(session, number)
    definitions = attributes.list_definitions(session)
    values = attributes.visible(definitions, row.attributes if row else {})
    found = {f"contact.{d.key}": _text(values.get(d.key)) for d in definitions}
    return {**found, "contact.name": name_of(session, number, row)}


def _text(value: attributes.Value | None) -> str | None:
    return None if value is None else str(value)


def _channel(row: Contact) -> ChannelOut:
    return ChannelOut(
        channel=row.channel,
        address=f"whatsapp:{row.phone}" if row.channel == "whatsapp" else row.phone,
        opted_out=row.opted_out_at is not None,
        opted_out_at=row.opted_out_at,
        opt_out_reason=row.opt_out_reason,
        opted_in_at=row.opted_in_at,
        first_seen_at=row.created_at,
    )


def _conversations(session: Session, number: str) -> list[ConversationRef]:
    rows = session.execute(
        select(Conversation, User)
        .outerjoin(User, User.id == Conversation.assignee_id)
        .where(Conversation.participant == number)
        .order_by(Conversation.id)
    ).all()
    return [
        ConversationRef(
            our_address=conversation.our_address,
            channel=conversation.channel,
            status=conversation.status.value,
            assignee_id=conversation.assignee_id,
            assignee=user.display_name if user else None,
            last_message_at=conversation.last_message_at,
        )
        for conversation, user in rows
    ]


def read_profile(session: Session, number: str) -> ProfileOut:
    """Everything known about the customer at `number` (E.164); NotFound for a stranger."""
    contacts = _contacts(session, number)
    row = _row(session, number)
    definitions = attributes.list_definitions(session)
    given = _given_name(contacts)
    edited = row.name if row is not None else None
    calls_total, calls = _section(session, "calls", number)
    campaigns_total, campaigns = _section(session, "campaigns", number)
    return ProfileOut(
        participant=number,
        name=edited or given,
        profile_name=given,
        name_source="edited" if edited else ("profile_name" if given else None),
        note=row.note if row is not None else "",
        attributes=attributes.visible(definitions, row.attributes if row is not None else {}),
        attribute_definitions=[AttributeOut.model_validate(d) for d in definitions],
        labels=queries.label_names_of(session, number),
        channels=[_channel(contact) for contact in contacts],
        conversations=_conversations(session, number),
        calls=Section[CallItem](total=calls_total, items=calls),
        campaigns=Section[CampaignItem](total=campaigns_total, items=campaigns),
        updated_by=row.updated_by if row is not None else None,
        updated_at=row.updated_at if row is not None else None,
    )


def _locked(session: Session, number: str) -> ContactProfile:
    """The customer's profile row, made when missing (race-safe) and locked for the edit."""
    now = utcnow()
    session.execute(
        dialect_insert(session)(ContactProfile)
        .values(participant=number, note="", attributes={}, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["participant"])
    )
    row = session.scalar(
        select(ContactProfile)
        .where(ContactProfile.participant == number)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row


def _apply(row: ContactProfile, change: ProfileChange, values: dict[str, Any]) -> list[str]:
    """Write the cleaned change into the row; the names of the fields that changed."""
    changed: list[str] = []
    if change.name is not None:
        name = clean_name(change.name)
        if name != row.name:
            row.name = name
            changed.append("name")
    if change.note is not None:
        note = clean_note(change.note)
        if note != row.note:
            row.note = note
            changed.append("note")
    stored = dict(row.attributes or {})
    for key, value in values.items():
        if value is None and key in stored:
            del stored[key]
        elif value is not None and stored.get(key) != value:
            stored[key] = value
        else:
            continue
        changed.append(f"attributes.{key}")
    if stored != (row.attributes or {}):
        row.attributes = stored  # a new dict: the JSON column sees the change
    return changed


def update_profile(
    session: Session, number: str, change: ProfileChange, principal: Principal
) -> ProfileOut:
    """Change what is given (audited: which fields, never their values); the profile now.

    Everything is checked before anything is written; labels go through
    `labels.set_labels` (an event in the thread and its own audit entry).
    """
    _contacts(session, number)
    if change.name is not None:
        clean_name(change.name)
    if change.note is not None:
        clean_note(change.note)
    values: dict[str, Any] = {}
    if change.attributes is not None:
        values = attributes.clean_values(attributes.list_definitions(session), change.attributes)
    if change.name is not None or change.note is not None or values:
        row = _locked(session, number)
        changed = _apply(row, change, values)
        if changed:
            _, who = states.actor_of(session, principal)
            row.updated_by = who[:100]
            row.updated_at = utcnow()
            session.flush()
            audit.record(session, principal.actor, "contact.update", number, {"changed": changed})
    if change.labels is not None:
        labels.set_labels(session, number, change.labels, principal)
    return read_profile(session, number)
