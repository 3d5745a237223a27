"""Contacts in and out as CSV: a streamed export, and an import checked before anything is stored.

Export: one row per number (a customer may be on SMS and WhatsApp), UTF-8 with a BOM and
formula-safe cells (`core.csvfile`), read and written a chunk of numbers at a time.

Import: a file with a header row naming its columns (`number`, `name`, `labels`, `channel`
and custom attributes by key; the export's other columns are recognised and ignored),
`;` or `,` (or tab) between cells, with or without a BOM, in UTF-8 (or Windows-1250, what
a Polish Excel saves). `preview` reads it and stores nothing; `apply` reads it again and
stores the valid rows. Existing contacts keep what a row leaves empty: a name or a value
given replaces theirs, labels given are added to theirs (never taken off). Unknown labels
make a row invalid (labels are the admins' list; an import does not grow it). Labels live
on conversations, so a number that has none yet gets its labels once it has one: the
preview counts such rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from relaydesk.auth.service import Principal
from relaydesk.channels.twilio.numbers import InvalidNumber, parse_address
from relaydesk.contacts import service as contacts
from relaydesk.contacts.models import Contact, ContactAttribute, ContactProfile
from relaydesk.core import audit
from relaydesk.core.config import get_settings
from relaydesk.core.csvfile import BOM, line, unsafe
from relaydesk.core.db import dialect_insert, session_scope, utcnow
from relaydesk.core.errors import Invalid, RelaydeskError, TooLarge
from relaydesk.core.i18n import N_
from relaydesk.inbox import attributes, profiles
from relaydesk.inbox.labels import MAX_PER_CONVERSATION, key_of
from relaydesk.messaging import states
from relaydesk.messaging.models import Conversation, ConversationEvent, ConversationLabel, Label

CHUNK = 1000  # numbers per export query
MAX_BYTES = 2 * 1024 * 1024
MAX_ROWS = 10_000
MAX_CELL = 1000  # characters in one cell
SHOWN_INVALID = 20  # rows whose reasons the preview lists
LABEL_SEPARATOR = "|"
CHANNELS = ("sms", "whatsapp")
# The export's columns that an import reads past (what the file says about consent and
# activity is the system's record, not something a file may change).
IGNORED = frozenset({"opted_out_sms", "opted_out_whatsapp", "last_inbound"})


# --- export ------------------------------------------------------------------------------


def export_columns(definitions: list[ContactAttribute]) -> list[str]:
    """The export's header: fixed columns, each attribute by key, consent and activity."""
    return [
        "number",
        "channels",
        "name",
        "labels",
        *(row.key for row in definitions),
        "opted_out_sms",
        "opted_out_whatsapp",
        "last_inbound",
    ]


def _export_chunk(
    session: Session, after: str, definitions: list[ContactAttribute]
) -> tuple[list[str], str]:
    """The CSV lines of the next CHUNK numbers after `after`, and the last number."""
    phones = list(
        session.scalars(
            select(Contact.phone)
            .where(Contact.phone > after)
            .group_by(Contact.phone)
            .order_by(Contact.phone)
            .limit(CHUNK)
        )
    )
    if not phones:
        return [], after
    rows: dict[str, list[Contact]] = {}
    for contact in session.scalars(select(Contact).where(Contact.phone.in_(phones))):
        rows.setdefault(contact.phone, []).append(contact)
    saved = {
        p.participant: p
        for p in session.scalars(
            select(ContactProfile).where(ContactProfile.participant.in_(phones))
        )
    }
    labels: dict[str, set[str]] = {}
    for participant, name in session.execute(
        select(Conversation.participant, Label.name)
        .join(ConversationLabel, ConversationLabel.conversation_id == Conversation.id)
        .join(Label, Label.id == ConversationLabel.label_id)
        .where(Conversation.participant.in_(phones))
    ):
        labels.setdefault(participant, set()).add(name)
    last = dict(
        session.execute(
            select(Conversation.participant, func.max(Conversation.last_inbound_at))
            .where(Conversation.participant.in_(phones))
            .group_by(Conversation.participant)
        ).all()
    )
    lines = []
    for phone in phones:
        channels = {c.channel: c for c in rows[phone]}
        profile = saved.get(phone)
        values = attributes.visible(definitions, profile.attributes if profile else {})
        given = max(
            (c for c in channels.values() if c.profile_name),
            key=lambda c: (c.updated_at, c.id),
            default=None,
        )
        shown = (profile.name if profile else None) or (given.profile_name if given else None)
        lines.append(
            line(
                [
                    phone,
                    LABEL_SEPARATOR.join(ch for ch in CHANNELS if ch in channels),
                    shown,
                    LABEL_SEPARATOR.join(sorted(labels.get(phone, ()), key=key_of)),
                    *(values.get(row.key) for row in definitions),
                    *(
                        channels[ch].opted_out_at if ch in channels else None
                        for ch in ("sms", "whatsapp")
                    ),
                    last.get(phone),
                ]
            )
        )
    return lines, phones[-1]


def export_csv() -> Iterator[str]:
    """The contacts file's text, header first, then a chunk of numbers at a time."""
    with session_scope(write=False) as session:
        definitions = attributes.list_definitions(session)
        session.expunge_all()
    yield BOM + line(export_columns(definitions))
    after = ""
    while True:
        with session_scope(write=False) as session:
            lines, after = _export_chunk(session, after, definitions)
        if not lines:
            return
        yield "".join(lines)


# --- import: reading ---------------------------------------------------------------------


@dataclass
class Row:
    """One valid row: a number on its channels and what to store for it."""

    line: int
    number: str  # E.164
    channels: tuple[str, ...]
    name: str | None
    labels: list[str]  # label names as defined
    values: dict[str, Any]


@dataclass
class Reading:
    """What a file holds: valid rows, duplicates, invalid rows and why."""

    rows: list[Row] = field(default_factory=list)
    total: int = 0
    duplicates: int = 0
    invalid: list[dict[str, Any]] = field(default_factory=list)  # {line, number, reason}
    invalid_count: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    fingerprint: str = ""


def _text(data: bytes) -> str:
    """The file as text; Invalid for what is not a text file."""
    if len(data) > MAX_BYTES:
        raise TooLarge(
            N_("The file is over the %(limit)s MB limit"),
            params={"limit": MAX_BYTES // (1024 * 1024)},
        )
    if not data.strip():
        raise Invalid(N_("The file is empty"), params={}, field="file")
    if b"\x00" in data:
        raise Invalid(N_("This is not a CSV file (it holds binary data)"), params={}, field="file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1250", errors="replace")


def _delimiter(header: str) -> str:
    """The delimiter the header line uses most: `;` (Polish Excel), `,` or a tab."""
    return max((";", ",", "\t"), key=header.count)


def _cell(value: str) -> str:
    return unsafe(value.strip())[:MAX_CELL]


def _reject(reading: Reading, number: int, raw: str, reason: RelaydeskError | str) -> None:
    reading.invalid_count += 1
    if len(reading.invalid) < SHOWN_INVALID:
        text = reason.message if isinstance(reason, RelaydeskError) else reason
        reading.invalid.append({"line": number, "number": raw[:64], "reason": text})


def _channels(raw: str, address_channel: str) -> tuple[str, ...]:
    if not raw:
        return (address_channel,)
    parts = {part.strip().lower() for part in raw.replace(",", LABEL_SEPARATOR).split("|")}
    parts.discard("")
    if not parts or not parts <= set(CHANNELS):
        raise Invalid(
            N_("The channel is sms, whatsapp or both (sms|whatsapp)"), params={}, field="channel"
        )
    return tuple(ch for ch in CHANNELS if ch in parts)


def read(session: Session, data: bytes) -> Reading:
    """Every row of an uploaded file checked (number, name, labels, values); stores nothing."""
    text = _text(data)
    reading = Reading(fingerprint=hashlib.sha256(data).hexdigest())
    first = text.split("\n", 1)[0]
    try:
        rows = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first))
        header = next(rows, [])
    except csv.Error:
        raise Invalid(N_("This is not a CSV file"), params={}, field="file") from None
    columns = [key_of(_cell(name)).replace(" ", "_") for name in header]
    definitions = {row.key: row for row in attributes.list_definitions(session)}
    known = {"number", "phone", "name", "labels", "channel", "channels", *definitions}
    if "number" not in columns and "phone" not in columns:
        raise Invalid(
            N_("The first row names the columns; one of them must be number"),
            params={},
            field="file",
        )
    reading.ignored_columns = [c for c in columns if c not in known and c not in IGNORED][:20]
    label_names = {label.key: label.name for label in session.scalars(select(Label))}
    region = get_settings().default_region
    seen: set[tuple[str, str]] = set()
    try:
        for cells in rows:
            if not any(cell.strip() for cell in cells):
                continue
            reading.total += 1
            if reading.total > MAX_ROWS:
                raise TooLarge(
                    N_("The file has more than %(max)s rows; split it into several files"),
                    params={"max": f"{MAX_ROWS:,}"},
                )
            found = dict(zip(columns, (_cell(c) for c in cells), strict=False))
            raw = found.get("number") or found.get("phone") or ""
            try:
                row = _row(rows.line_num, found, raw, region, definitions, label_names)
            except InvalidNumber as exc:
                _reject(reading, rows.line_num, raw, Invalid(exc.template, params=exc.params))
                continue
            except Invalid as exc:
                _reject(reading, rows.line_num, raw, exc)
                continue
            keys = {(row.number, ch) for ch in row.channels}
            if keys & seen:
                reading.duplicates += 1
                continue
            seen |= keys
            reading.rows.append(row)
    except csv.Error:
        raise Invalid(N_("This is not a CSV file"), params={}, field="file") from None
    return reading


def _row(
    number: int,
    found: dict[str, str],
    raw: str,
    region: str,
    definitions: dict[str, ContactAttribute],
    label_names: dict[str, str],
) -> Row:
    """One row checked; InvalidNumber or Invalid saying what is wrong with it."""
    address = parse_address(raw, region)
    channels = _channels(found.get("channels") or found.get("channel") or "", address.channel)
    name = profiles.clean_name(found.get("name", "")) if found.get("name") else None
    wanted = [part.strip() for part in found.get("labels", "").split(LABEL_SEPARATOR)]
    names: list[str] = []
    for part in wanted:
        if not part:
            continue
        if key_of(part) not in label_names:
            raise Invalid(N_("No label is named %(names)s"), params={"names": [part]})
        if label_names[key_of(part)] not in names:
            names.append(label_names[key_of(part)])
    if len(names) > MAX_PER_CONVERSATION:
        raise Invalid(
            N_("A conversation carries at most %(max)s labels"),
            params={"max": MAX_PER_CONVERSATION},
        )
    given = {key: found[key] for key in definitions if found.get(key)}
    values = {
        key: value
        for key, value in attributes.clean_values(list(definitions.values()), given).items()
        if value is not None
    }
    return Row(number, address.e164, channels, name, names, values)


# --- import: preview and apply -----------------------------------------------------------


def _existing(session: Session, phones: list[str]) -> tuple[set[str], set[str]]:
    """Of these numbers: those with a contact row, and those with a conversation."""
    known: set[str] = set()
    talking: set[str] = set()
    for start in range(0, len(phones), contacts.IN_CHUNK):
        chunk = phones[start : start + contacts.IN_CHUNK]
        known.update(session.scalars(select(Contact.phone).where(Contact.phone.in_(chunk))))
        talking.update(
            session.scalars(
                select(Conversation.participant).where(Conversation.participant.in_(chunk))
            )
        )
    return known, talking


def summary(session: Session, reading: Reading) -> dict[str, Any]:
    """The preview's counts: valid (new and existing), duplicate and invalid rows."""
    phones = sorted({row.number for row in reading.rows})
    known, talking = _existing(session, phones)
    return {
        "rows": reading.total,
        "valid": len(reading.rows),
        "new": sum(1 for row in reading.rows if row.number not in known),
        "existing": sum(1 for row in reading.rows if row.number in known),
        "duplicates": reading.duplicates,
        "invalid": reading.invalid_count,
        "invalid_rows": reading.invalid,
        "ignored_columns": reading.ignored_columns,
        "labels_waiting": sum(
            1 for row in reading.rows if row.labels and row.number not in talking
        ),
        "fingerprint": reading.fingerprint,
    }


def preview(session: Session, data: bytes) -> dict[str, Any]:
    """What importing this file would do, storing nothing."""
    return summary(session, read(session, data))


def _profiles(session: Session, rows: list[Row]) -> int:
    """Write names and attribute values (made when missing); how many profiles changed."""
    wanted = [row for row in rows if row.name or row.values]
    if not wanted:
        return 0
    now = utcnow()
    session.execute(
        dialect_insert(session)(ContactProfile).on_conflict_do_nothing(
            index_elements=["participant"]
        ),
        [
            {
                "participant": row.number,
                "note": "",
                "attributes": {},
                "created_at": now,
                "updated_at": now,
            }
            for row in wanted
        ],
    )
    by_number = {row.number: row for row in wanted}
    changed = 0
    numbers = sorted(by_number)
    for start in range(0, len(numbers), contacts.IN_CHUNK):
        chunk = numbers[start : start + contacts.IN_CHUNK]
        for profile in session.scalars(
            select(ContactProfile)
            .where(ContactProfile.participant.in_(chunk))
            .execution_options(populate_existing=True)
        ):
            row = by_number[profile.participant]
            stored = {**(profile.attributes or {}), **row.values}
            name = row.name or profile.name
            if stored != (profile.attributes or {}) or name != profile.name:
                profile.attributes, profile.name = stored, name
                profile.updated_by, profile.updated_at = "CSV import", now
                changed += 1
    session.flush()
    return changed


def _labels(session: Session, rows: list[Row], principal: Principal) -> int:
    """Add the rows' labels to their conversations (an event in each thread); how many."""
    wanted = {row.number: row.labels for row in rows if row.labels}
    if not wanted:
        return 0
    ids = {label.name: label.id for label in session.scalars(select(Label))}
    names = {lid: name for name, lid in ids.items()}
    numbers = sorted(wanted)
    conversations: dict[str, list[int]] = {}
    present: set[tuple[int, int]] = set()
    for start in range(0, len(numbers), contacts.IN_CHUNK):
        chunk = numbers[start : start + contacts.IN_CHUNK]
        for cid, participant in session.execute(
            select(Conversation.id, Conversation.participant).where(
                Conversation.participant.in_(chunk)
            )
        ):
            conversations.setdefault(participant, []).append(cid)
        present.update(
            (cid, lid)
            for cid, lid in session.execute(
                select(ConversationLabel.conversation_id, ConversationLabel.label_id)
                .join(Conversation, Conversation.id == ConversationLabel.conversation_id)
                .where(Conversation.participant.in_(chunk))
            )
        )
    actor_id, actor = states.actor_of(session, principal)
    now, changed = utcnow(), 0
    for number, rows_ids in conversations.items():
        label_ids = {ids[name] for name in wanted[number] if name in ids}
        carried = {lid for cid, lid in present if cid in rows_ids}
        added = sorted(label_ids - carried, key=lambda lid: key_of(names[lid]))
        room = MAX_PER_CONVERSATION - len(carried)
        added = added[: max(room, 0)]
        if not added:
            continue
        session.add_all(
            ConversationLabel(conversation_id=cid, label_id=lid)
            for cid in rows_ids
            for lid in added
            if (cid, lid) not in present
        )
        session.add(
            ConversationEvent(
                conversation_id=min(rows_ids),
                participant=number,
                kind="labels",
                actor_id=actor_id,
                actor=actor,
                data={"added": [names[lid] for lid in added], "removed": []},
                created_at=now,
            )
        )
        changed += 1
    session.flush()
    return changed


def apply(
    session: Session, data: bytes, principal: Principal, previewed: str | None = None
) -> dict[str, Any]:
    """Store the file's valid rows (contacts, names, values, labels); the counts (audited).

    With `previewed` (the preview's fingerprint), a different file is refused: what is
    stored is what the person saw.
    """
    reading = read(session, data)
    if previewed and previewed != reading.fingerprint:
        raise Invalid(
            N_("The file is not the one previewed; preview it again"), params={}, field="file"
        )
    counts = summary(session, reading)
    contacts.get_or_create_many(
        session, ((row.number, ch) for row in reading.rows for ch in row.channels)
    )
    counts["profiles_changed"] = _profiles(session, reading.rows)
    counts["labelled"] = _labels(session, reading.rows, principal)
    audit.record(
        session,
        principal.actor,
        "contacts.import",
        "contacts",
        {k: counts[k] for k in ("valid", "new", "existing", "duplicates", "invalid")},
    )
    return counts
