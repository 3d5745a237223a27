"""Contacts: lookup, creation on first outbound message, and consent (opt-out)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from relaydesk.channels.twilio.numbers import InvalidNumber, normalize
from relaydesk.contacts.models import Contact
from relaydesk.core.config import get_settings
from relaydesk.core.db import dialect_insert, utcnow
from relaydesk.core.errors import Invalid

IN_CHUNK = 500  # values per IN (...) list: well under every database's parameter limit


def participant_number(raw: str) -> str:
    """A customer's number as written by a person, in E.164; Invalid (422) otherwise."""
    try:
        return normalize(raw, get_settings().default_region)
    except InvalidNumber as exc:
        raise Invalid(exc.template, params=exc.params, field="participant") from None


def find(session: Session, phone: str, channel: str) -> Contact | None:
    """The contact for an E.164 number on a channel, if known."""
    return session.scalar(select(Contact).where(Contact.phone == phone, Contact.channel == channel))


def get_or_create(session: Session, phone: str, channel: str) -> Contact:
    """The contact for `phone` on `channel`, created when first seen (race-safe)."""
    now = utcnow()
    insert = dialect_insert(session)
    session.execute(
        insert(Contact)
        .values(phone=phone, channel=channel, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["phone", "channel"])
    )
    contact = find(session, phone, channel)
    assert contact is not None
    return contact


def get_or_create_many(
    session: Session, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Contact]:
    """The contacts for many (E.164 number, channel) pairs, creating the missing ones."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    now = utcnow()
    new = dialect_insert(session)(Contact)
    session.execute(
        new.on_conflict_do_nothing(index_elements=["phone", "channel"]),
        [{"phone": p, "channel": c, "created_at": now, "updated_at": now} for p, c in wanted],
    )
    found: dict[tuple[str, str], Contact] = {}
    for start in range(0, len(wanted), IN_CHUNK):
        phones = sorted({p for p, _ in wanted[start : start + IN_CHUNK]})
        for contact in session.scalars(select(Contact).where(Contact.phone.in_(phones))):
            found[(contact.phone, contact.channel)] = contact
    return {key: found[key] for key in wanted}
