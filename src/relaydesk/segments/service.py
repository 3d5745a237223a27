"""Segments: saved contact filters, their live count, and their members as campaign recipients.

A segment's members are contact rows (a number on one channel) for which every rule holds.
Each rule becomes one set-wise condition on `contacts` (an IN over the conversations, their
labels or the profiles), so a count is one SQL statement on SQLite and PostgreSQL alike,
whatever the number of contacts. Custom attributes are read inside the database through
its JSON functions (`json_extract`/`json_type` on SQLite, `->`, `->>`/`json_typeof` on
PostgreSQL), guarded by the value's JSON type so that a value stored under an older
definition of another type never breaks a comparison (it simply does not match).

A customer "has" a label when any of their conversations carries it (labels live on
conversations, `inbox.labels`); "wrote within N days" and "has a conversation in state…"
look at that contact's (that channel's) conversations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, select
from sqlalchemy.orm import Session

from relaydesk.contacts.models import AttributeKind, Contact, ContactAttribute, ContactProfile
from relaydesk.core import audit
from relaydesk.core.config import get_settings
from relaydesk.core.db import utcnow
from relaydesk.core.errors import Invalid, NotFound
from relaydesk.core.i18n import N_
from relaydesk.core.pagination import cursor_id, encode_cursor
from relaydesk.inbox import attributes
from relaydesk.inbox.labels import one_line
from relaydesk.messaging.models import Conversation, ConversationLabel, Label
from relaydesk.messaging.service import WHATSAPP_WINDOW, opted_out
from relaydesk.segments.models import Segment
from relaydesk.segments.schemas import (
    MAX_NAME,
    AttributeRule,
    CountOut,
    MemberOut,
    MembersPage,
    Rules,
)

PAGE = 100
# Which operators each kind of attribute takes.
OPS: dict[AttributeKind, frozenset[str]] = {
    AttributeKind.TEXT: frozenset({"equals", "contains"}),
    AttributeKind.NUMBER: frozenset({"equals", "lt", "lte", "gt", "gte"}),
    AttributeKind.DATE: frozenset({"equals", "lt", "lte", "gt", "gte"}),
    AttributeKind.LIST: frozenset({"equals", "one_of"}),
}


# --- rules ---------------------------------------------------------------------------


def clean_name(raw: str) -> str:
    """A segment's name as stored: one line, spaces collapsed, 1 to MAX_NAME characters."""
    name = " ".join(raw.split())
    if not name or len(name) > MAX_NAME or not one_line(raw.strip()):
        raise Invalid(
            N_("A segment's name is one line of 1 to %(max)s characters"),
            params={"max": MAX_NAME},
            field="name",
        )
    return name


def _clean_attribute(rule: AttributeRule, definition: ContactAttribute) -> AttributeRule:
    """The rule with its value(s) checked and written as stored (a list's option as defined)."""
    kind = definition.kind
    if rule.op not in OPS[kind]:
        raise Invalid(
            N_("%(attribute)s (%(kind)s) cannot be compared with %(op)s; use one of: %(ops)s"),
            params={
                "attribute": definition.name,
                "kind": kind.value,
                "op": rule.op,
                "ops": sorted(OPS[kind]),
            },
            field=f"rules.attributes.{rule.key}",
        )
    if rule.op == "one_of":
        values = [attributes.clean_value(definition, raw) for raw in rule.values]
        kept = [str(v) for v in values if v is not None]
        if not kept:
            raise Invalid(
                N_("%(attribute)s: choose at least one option"),
                params={"attribute": definition.name},
                field=f"rules.attributes.{rule.key}",
            )
        return AttributeRule(key=rule.key, op="one_of", values=sorted(set(kept)))
    value = attributes.clean_value(definition, rule.value)
    if value is None:
        raise Invalid(
            N_("%(attribute)s: give the value to compare with"),
            params={"attribute": definition.name},
            field=f"rules.attributes.{rule.key}",
        )
    return AttributeRule(key=rule.key, op=rule.op, value=value)


def check_rules(session: Session, rules: Rules) -> Rules:
    """The rules as stored; Invalid naming an unknown label or attribute, or a bad value."""
    wanted = sorted({lid for rule in rules.labels for lid in rule.label_ids})
    known = set(session.scalars(select(Label.id).where(Label.id.in_(wanted)))) if wanted else set()
    unknown = [lid for lid in wanted if lid not in known]
    if unknown:
        raise Invalid(
            N_("No label has the id %(ids)s"), params={"ids": unknown[:5]}, field="rules.labels"
        )
    definitions = {row.key: row for row in attributes.list_definitions(session)}
    missing = sorted({rule.key for rule in rules.attributes if rule.key not in definitions})
    if missing:
        raise Invalid(
            N_("No contact attribute has the key %(keys)s"),
            params={"keys": missing[:5]},
            field="rules.attributes",
        )
    cleaned = [_clean_attribute(rule, definitions[rule.key]) for rule in rules.attributes]
    return rules.model_copy(
        update={
            "attributes": cleaned,
            "conversation_status": sorted(set(rules.conversation_status)),
        }
    )


def _json_kind(session: Session, key: str, number: bool) -> ColumnElement[bool]:
    """Whether the profile's value under `key` is a JSON number (or a string)."""
    column = ContactProfile.attributes
    if session.get_bind().dialect.name == "postgresql":
        return func.json_typeof(column[key]) == ("number" if number else "string")
    kind = func.json_type(column, f'$."{key}"')  # the key is [a-z][a-z0-9_]*
    return kind.in_(("integer", "real")) if number else kind == "text"


def _attribute_condition(session: Session, rule: AttributeRule) -> ColumnElement[bool]:
    """The profiles (participants) whose value satisfies one attribute rule."""
    column = ContactProfile.attributes
    number = isinstance(rule.value, int | float) and not isinstance(rule.value, bool)
    guard = _json_kind(session, rule.key, number)
    # CASE, not AND: PostgreSQL may evaluate the comparison before the type check.
    value: ColumnElement[Any] = case(
        (guard, column[rule.key].as_float() if number else column[rule.key].as_string()),
        else_=None,
    )
    if rule.op == "one_of":
        return value.in_(rule.values)
    if rule.op == "contains":
        return value.icontains(str(rule.value), autoescape=True)
    compare = {
        "equals": value.__eq__,
        "lt": value.__lt__,
        "lte": value.__le__,
        "gt": value.__gt__,
        "gte": value.__ge__,
    }[rule.op]
    return compare(rule.value)


def _labelled(label_ids: list[int]) -> Any:
    """The numbers with a conversation that carries one of these labels."""
    return (
        select(Conversation.participant)
        .join(ConversationLabel, ConversationLabel.conversation_id == Conversation.id)
        .where(ConversationLabel.label_id.in_(label_ids))
    )


def conditions(session: Session, rules: Rules, now: datetime) -> list[ColumnElement[bool]]:
    """The WHERE conditions on `contacts` that the (checked) rules mean, one per rule."""
    where: list[ColumnElement[bool]] = []
    if rules.channel:
        where.append(Contact.channel == rules.channel)
    if rules.opted_in_only:
        where.append(Contact.opted_out_at.is_(None))
    for label_rule in rules.labels:
        ids = sorted(set(label_rule.label_ids))
        if label_rule.match == "any":
            where.append(Contact.phone.in_(_labelled(ids)))
        elif label_rule.match == "all":
            where.extend(Contact.phone.in_(_labelled([lid])) for lid in ids)
        else:
            where.append(Contact.phone.not_in(_labelled(ids)))
    if rules.attributes:
        # One pass over the profiles for every attribute rule (each value is one JSON path).
        where.append(
            Contact.phone.in_(
                select(ContactProfile.participant).where(
                    *(_attribute_condition(session, rule) for rule in rules.attributes)
                )
            )
        )
    if rules.last_inbound_within_days:
        since = now - timedelta(days=rules.last_inbound_within_days)
        where.append(
            Contact.id.in_(
                select(Conversation.contact_id).where(Conversation.last_inbound_at >= since)
            )
        )
    if rules.conversation_status:
        where.append(
            Contact.id.in_(
                select(Conversation.contact_id).where(
                    Conversation.status.in_(rules.conversation_status)
                )
            )
        )
    return where


# --- counting and resolving ------------------------------------------------------------


def _window_open(now: datetime) -> Any:
    """The contacts with a conversation whose last inbound message is within 24 hours.

    The send path judges the conversation a message joins (the latest one); with several
    of our numbers the count may differ from it for a customer who wrote to another one.
    """
    return select(Conversation.contact_id).where(
        Conversation.last_inbound_at > now - WHATSAPP_WINDOW
    )


def count(session: Session, rules: Rules) -> CountOut:
    """The live count: members, how many a campaign would reach and skip (one query)."""
    checked = check_rules(session, rules)
    now = utcnow()
    out = Contact.opted_out_at.is_not(None)
    whatsapp = and_(Contact.channel == "whatsapp", Contact.opted_out_at.is_(None))
    # An SMS-only segment has no WhatsApp member: no need to look at the windows.
    in_window: ColumnElement[Any] = (
        func.sum(case((and_(whatsapp, Contact.id.in_(_window_open(now))), 1), else_=0))
        if checked.channel != "sms"
        else literal(0)
    )
    row = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((out, 1), else_=0)), 0),
            func.coalesce(func.sum(case((whatsapp, 1), else_=0)), 0),
            func.coalesce(in_window, 0),
        ).where(*conditions(session, checked, now))
    ).one()
    matching, skipped, on_whatsapp, window = (int(v) for v in row)
    return CountOut(
        matching=matching,
        recipients=matching - skipped,
        skipped=skipped,
        whatsapp=on_whatsapp,
        whatsapp_window_open=window,
        limit=get_settings().campaign_max_recipients,
    )


@dataclass
class Resolution:
    """A segment's members as a campaign sees them: who gets it, who is skipped and why."""

    recipients: list[str] = field(default_factory=list)  # +48… or whatsapp:+48…
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (address, reason)

    @property
    def matching(self) -> int:
        """Every member, skipped ones included."""
        return len(self.recipients) + len(self.skipped)


def _address(phone: str, channel: str) -> str:
    return f"whatsapp:{phone}" if channel == "whatsapp" else phone


def resolve(session: Session, segment_id: int) -> Resolution:
    """Every member of a saved segment, in contact order; opted-out ones skipped with why.

    Refuses (before reading the members) a segment with more recipients than a campaign
    may have: the limit applies to the resolved list.
    """
    segment = get(session, segment_id)
    rules = check_rules(session, Rules.model_validate(segment.rules))
    now = utcnow()
    where = conditions(session, rules, now)
    sendable = int(
        session.scalar(select(func.count()).where(*where, Contact.opted_out_at.is_(None))) or 0
    )
    limit = get_settings().campaign_max_recipients
    if sendable > limit:
        raise Invalid(
            N_(
                "The segment has %(count)s recipients; a campaign may have at most "
                "%(limit)s (CAMPAIGN_MAX_RECIPIENTS). Narrow its rules."
            ),
            params={"count": f"{sendable:,}", "limit": f"{limit:,}"},
            field="segment_id",
        )
    result = Resolution()
    rows = session.execute(
        select(Contact.phone, Contact.channel, Contact.opted_out_at, Contact.opt_out_reason)
        .where(*where)
        .order_by(Contact.id)
    )
    for phone, channel, out_at, reason in rows:
        address = _address(phone, channel)
        if out_at is not None:
            result.skipped.append((address, opted_out(phone, out_at, reason).message))
        else:
            result.recipients.append(address)
    return result


def members(session: Session, segment_id: int, cursor: str | None) -> MembersPage:
    """A page of a saved segment's contacts, by contact id, with their name and last inbound."""
    segment = get(session, segment_id)
    rules = check_rules(session, Rules.model_validate(segment.rules))
    query = select(Contact).where(*conditions(session, rules, utcnow()))
    if cursor:
        query = query.where(Contact.id > cursor_id(cursor))
    rows = list(session.scalars(query.order_by(Contact.id).limit(PAGE + 1)))
    page = rows[:PAGE]
    phones = sorted({c.phone for c in page})
    names = dict(
        session.execute(
            select(ContactProfile.participant, ContactProfile.name).where(
                ContactProfile.participant.in_(phones)
            )
        ).all()
    )
    last = dict(
        session.execute(
            select(Conversation.contact_id, func.max(Conversation.last_inbound_at))
            .where(Conversation.contact_id.in_([c.id for c in page]))
            .group_by(Conversation.contact_id)
        ).all()
    )
    items = [
        MemberOut(
            contact_id=c.id,
            number=_address(c.phone, c.channel),
            channel="whatsapp" if c.channel == "whatsapp" else "sms",
            name=names.get(c.phone) or c.profile_name,
            opted_out=c.opted_out_at is not None,
            last_inbound_at=last.get(c.id),
        )
        for c in page
    ]
    return MembersPage(items=items, next=encode_cursor(page[-1].id) if len(rows) > PAGE else None)


# --- saved segments --------------------------------------------------------------------


def list_segments(session: Session) -> list[Segment]:
    """Every saved segment, by name."""
    return list(session.scalars(select(Segment).order_by(Segment.name, Segment.id)))


def get(session: Session, segment_id: int) -> Segment:
    """One segment, or NotFound."""
    segment = session.get(Segment, segment_id)
    if segment is None:
        raise NotFound(N_("Segment %(id)s does not exist"), params={"id": segment_id})
    return segment


def create(session: Session, name: str, rules: Rules, actor: str) -> Segment:
    """Save a segment (audited) after checking its rules."""
    checked = check_rules(session, rules)
    now = utcnow()
    segment = Segment(
        name=clean_name(name),
        rules=checked.model_dump(mode="json"),
        created_by=actor[:100],
        created_at=now,
        updated_at=now,
    )
    session.add(segment)
    session.flush()
    audit.record(session, actor, "segment.create", f"segment:{segment.id}", {"name": segment.name})
    return segment


def update(
    session: Session, segment_id: int, name: str | None, rules: Rules | None, actor: str
) -> Segment:
    """Rename a segment or replace its rules (audited); None keeps what is there."""
    segment = get(session, segment_id)
    if name is not None:
        segment.name = clean_name(name)
    if rules is not None:
        segment.rules = check_rules(session, rules).model_dump(mode="json")
    segment.updated_at = utcnow()
    session.flush()
    audit.record(session, actor, "segment.update", f"segment:{segment.id}", {"name": segment.name})
    return segment


def delete(session: Session, segment_id: int, actor: str) -> None:
    """Delete a segment (audited); campaigns made from it keep their recipients."""
    segment = get(session, segment_id)
    session.delete(segment)
    session.flush()
    audit.record(session, actor, "segment.delete", f"segment:{segment_id}", {"name": segment.name})
