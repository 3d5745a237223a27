"""Custom contact attributes: the definitions admins keep, and values checked by their kind.

A definition has a key (what canned answers write as `{{contact.<key>}}`), a name people
read, a kind (text, number, date, list) and, for a list, its options. The definitions are
replaced as a whole (`replace`), in the order given. A value is kept in the profile under
its key; removing a definition, changing its kind or dropping a list option leaves stored
values in place but hidden (`visible`), so putting the definition back shows them again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from relaydesk.contacts.models import AttributeKind, ContactAttribute
from relaydesk.core import audit
from relaydesk.core.db import utcnow
from relaydesk.core.errors import Invalid
from relaydesk.core.i18n import N_
from relaydesk.inbox.labels import key_of, one_line

MAX_ATTRIBUTES = 50
MAX_KEY = 40
MAX_NAME = 60
MAX_OPTIONS = 50
MAX_OPTION = 100
MAX_TEXT = 500
# Beyond this a number loses digits in JSON clients (2**53 ≈ 9.007e15); no attribute
# a team keeps about a customer (an amount, a count, a year) comes near it.
MAX_NUMBER = 10**15
# Canned answers fill {{contact.name}} and {{contact.phone}} themselves; the others
# name parts of the profile, so a custom attribute of that key would be ambiguous.
RESERVED = frozenset({"name", "phone", "note", "labels", "participant"})
KEY_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
_KEY = re.compile(KEY_PATTERN)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# A number as typed: digits with a point or a comma (Polish writes 4,5), no exponent.
_NUMBER = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)")
_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('contact_attributes'))")

Value = str | int | float


@dataclass(frozen=True)
class Definition:
    """One attribute as an admin asks for it (checked by `clean_definitions`)."""

    key: str
    name: str
    kind: str
    options: list[str] = field(default_factory=list)


def list_definitions(session: Session) -> list[ContactAttribute]:
    """Every attribute definition, in the order the admins gave."""
    return list(
        session.scalars(
            select(ContactAttribute).order_by(ContactAttribute.position, ContactAttribute.id)
        )
    )


def _kind(raw: str, where: str) -> AttributeKind:
    try:
        return AttributeKind(raw)
    except ValueError:
        raise Invalid(
            N_("%(attribute)s: the type is one of text, number, date, list"),
            params={"attribute": where},
            field="kind",
        ) from None


def _options(raw: Sequence[str], kind: AttributeKind, where: str) -> list[str]:
    if not all(one_line(option.strip()) for option in raw):
        raise Invalid(
            N_(
                "%(attribute)s: an option is one line of at most %(max)s characters "
                "without control characters"
            ),
            params={"attribute": where, "max": MAX_OPTION},
            field="options",
        )
    cleaned = [" ".join(option.split()) for option in raw]
    cleaned = [option for option in cleaned if option]
    if kind is not AttributeKind.LIST:
        if cleaned:
            raise Invalid(
                N_("%(attribute)s: only a list has options"),
                params={"attribute": where},
                field="options",
            )
        return []
    if not 1 <= len(cleaned) <= MAX_OPTIONS:
        raise Invalid(
            N_("%(attribute)s: a list has 1 to %(max)s options"),
            params={"attribute": where, "max": MAX_OPTIONS},
            field="options",
        )
    seen: set[str] = set()
    for option in cleaned:
        if len(option) > MAX_OPTION:
            raise Invalid(
                N_(
                    "%(attribute)s: an option is one line of at most %(max)s characters "
                    "without control characters"
                ),
                params={"attribute": where, "max": MAX_OPTION},
                field="options",
            )
        if key_of(option) in seen:
            raise Invalid(
                N_("%(attribute)s: the option %(option)s is there twice"),
                params={"attribute": where, "option": option},
                field="options",
            )
        seen.add(key_of(option))
    return cleaned


def _definition(raw: Definition) -> Definition:
    key = raw.key.strip()
    where = key[:MAX_KEY] or "?"
    if not _KEY.fullmatch(key):
        raise Invalid(
            N_(
                "%(key)s is not a key: 1 to %(max)s lower-case letters, digits or _, "
                "starting with a letter"
            ),
            params={"key": key[:MAX_KEY] or '""', "max": MAX_KEY},
            field="key",
        )
    if key in RESERVED:
        raise Invalid(
            N_("%(key)s is reserved; choose another key"), params={"key": key}, field="key"
        )
    name = " ".join(raw.name.split())
    if not name or len(name) > MAX_NAME or not one_line(raw.name.strip()):
        raise Invalid(
            N_("%(attribute)s: the name is one line of 1 to %(max)s characters"),
            params={"attribute": where, "max": MAX_NAME},
            field="name",
        )
    kind = _kind(raw.kind, where)
    return Definition(key, name, kind.value, _options(raw.options, kind, where))


def clean_definitions(wanted: Sequence[Definition]) -> list[Definition]:
    """The definitions as stored; Invalid for a bad one, a key or a name given twice."""
    if len(wanted) > MAX_ATTRIBUTES:
        raise Invalid(
            N_("There can be at most %(max)s contact attributes"),
            params={"max": MAX_ATTRIBUTES},
            field="attributes",
        )
    cleaned = [_definition(raw) for raw in wanted]
    keys: set[str] = set()
    names: set[str] = set()
    for item in cleaned:
        if item.key in keys:
            raise Invalid(
                N_("The key %(key)s is there twice"), params={"key": item.key}, field="key"
            )
        if key_of(item.name) in names:
            raise Invalid(
                N_("The name %(name)s is there twice"), params={"name": item.name}, field="name"
            )
        keys.add(item.key)
        names.add(key_of(item.name))
    return cleaned


def replace(session: Session, wanted: Sequence[Definition], actor: str) -> list[ContactAttribute]:
    """Make the definitions exactly `wanted`, in its order (audited when anything changes).

    A key kept keeps its row (and the values stored under it); a key left out is deleted,
    its values hidden, not erased.
    """
    cleaned = clean_definitions(wanted)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_LOCK)  # two admins saving at once: the second sees the first
    existing = {row.key: row for row in list_definitions(session)}
    added, changed = [], []
    now = utcnow()
    for position, item in enumerate(cleaned):
        row = existing.pop(item.key, None)
        if row is None:
            session.add(
                ContactAttribute(
                    key=item.key,
                    name=item.name,
                    kind=AttributeKind(item.kind),
                    options=item.options,
                    position=position,
                    created_at=now,
                )
            )
            added.append(item.key)
            continue
        if (row.name, row.kind.value, list(row.options or [])) != (
            item.name,
            item.kind,
            item.options,
        ):
            changed.append(item.key)
        if row.position != position:
            row.position = position
            if item.key not in changed:
                changed.append(item.key)
        row.name, row.kind, row.options = item.name, AttributeKind(item.kind), item.options
    removed = sorted(existing)
    for row in existing.values():
        session.delete(row)
    session.flush()
    if added or changed or removed:
        audit.record(
            session,
            actor,
            "contact_attributes.update",
            "contact_attributes",
            {"added": added, "changed": changed, "removed": removed},
        )
    return list_definitions(session)


# --- values --------------------------------------------------------------------------


def _refuse(template: str, definition: ContactAttribute, **params: Any) -> Invalid:
    return Invalid(
        template,
        params={"attribute": definition.name, **params},
        field=f"attributes.{definition.key}",
    )


def _number(definition: ContactAttribute, raw: object) -> int | float:
    if isinstance(raw, str):
        typed = raw.strip()
        if not _NUMBER.fullmatch(typed):
            raise _refuse(N_("%(attribute)s takes a number, e.g. 12 or 4.5"), definition)
        number: int | float = float(typed.replace(",", "."))
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        number = raw
    else:
        raise _refuse(N_("%(attribute)s takes a number, e.g. 12 or 4.5"), definition)
    if (isinstance(number, float) and not math.isfinite(number)) or abs(number) > MAX_NUMBER:
        raise _refuse(
            N_("%(attribute)s takes a number between -%(max)s and %(max)s"),
            definition,
            max=f"{MAX_NUMBER:,}",
        )
    if isinstance(number, float) and number.is_integer():
        return int(number)
    return number


def _date(definition: ContactAttribute, raw: object) -> str:
    typed = raw.strip() if isinstance(raw, str) else ""
    try:
        if not _DATE.fullmatch(typed):
            raise ValueError(typed)
        return date.fromisoformat(typed).isoformat()
    except ValueError:
        raise _refuse(
            N_("%(attribute)s takes a date written YYYY-MM-DD, e.g. 2026-03-31"), definition
        ) from None


def _choice(definition: ContactAttribute, raw: object) -> str:
    options = list(definition.options or [])
    if isinstance(raw, str):
        wanted = key_of(raw)
        for option in options:
            if key_of(option) == wanted:
                return option
    raise _refuse(
        N_("%(attribute)s takes one of: %(options)s"), definition, options=", ".join(options)
    )


def _text(definition: ContactAttribute, raw: object) -> str:
    if not isinstance(raw, str):
        raise _refuse(N_("%(attribute)s takes text"), definition)
    value = raw.strip()
    if not one_line(value):
        raise _refuse(
            N_("%(attribute)s is one line of text without control characters"), definition
        )
    if len(value) > MAX_TEXT:
        raise _refuse(
            N_("%(attribute)s is at most %(max)s characters long"), definition, max=MAX_TEXT
        )
    return value


_CLEANERS = {
    AttributeKind.TEXT: _text,
    AttributeKind.NUMBER: _number,
    AttributeKind.DATE: _date,
    AttributeKind.LIST: _choice,
}


def clean_value(definition: ContactAttribute, raw: object) -> Value | None:
    """A value as stored for this attribute; None (or blank text) removes it."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    return _CLEANERS[definition.kind](definition, raw)


def clean_values(
    definitions: Sequence[ContactAttribute], given: Mapping[str, object]
) -> dict[str, Value | None]:
    """Values by key, each checked against its definition; Invalid naming unknown keys."""
    by_key = {row.key: row for row in definitions}
    unknown = sorted(key for key in given if key not in by_key)
    if unknown:
        raise Invalid(
            N_("No contact attribute has the key %(keys)s"),
            params={"keys": [key[:MAX_KEY] for key in unknown[:5]]},
            field="attributes",
        )
    return {key: clean_value(by_key[key], raw) for key, raw in given.items()}


def visible(definitions: Sequence[ContactAttribute], stored: Mapping[str, Any]) -> dict[str, Value]:
    """The stored values that fit a definition now, in the definitions' order."""
    shown: dict[str, Value] = {}
    for row in definitions:
        if row.key not in stored:
            continue
        try:
            value = clean_value(row, stored[row.key])
        except Invalid:
            continue  # kept for when the definition fits it again
        if value is not None:
            shown[row.key] = value
    return shown
