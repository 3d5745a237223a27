"""Canned answers: shared ones (admins manage them) and each person's own, rendered.

A caller sees the shared answers and their own; a shortcut is unique among what anyone
sees, so a personal answer may not take a shared one's shortcut, nor a shared one a
personal one's. Someone else's personal answers do not exist for the caller (404).
Rendering fills `{{contact.name}}`, `{{contact.phone}}`, the profile's custom attributes
(`{{contact.city}}`) and `{{agent.name}}` for one customer and the caller, and counts the
SMS segments of the result as a send would.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, or_, select, text
from sqlalchemy.orm import Session

from relaydesk.auth.models import ROLE_RANK
from relaydesk.auth.service import Principal
from relaydesk.channels.twilio.segments import count_segments
from relaydesk.core import audit
from relaydesk.core.errors import Conflict, Forbidden, Invalid, NotFound
from relaydesk.core.i18n import N_
from relaydesk.inbox import profiles
from relaydesk.inbox.models import CannedResponse
from relaydesk.messaging.states import user_name

SHORTCUT_MAX = 30
BODY_MAX = 1600  # Twilio's limit for one message body
LIST_MAX = 50
# Enough for any team; keeps the search (done in Python, below) small.
MAX_SHARED = 500
MAX_PERSONAL = 500

# \w in a str pattern: Unicode letters and digits (ą, ß, я) and "_".
_SHORTCUT = re.compile(r"[\w-]+")
# PostgreSQL cannot store NUL or a lone surrogate in text.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# {{ name }}: spaces inside the braces are allowed; "{{}}" is no variable.
_VARIABLE = re.compile(r"\{\{\s*([^{}\s][^{}]*?)\s*\}\}")
_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:key))")


def clean_shortcut(raw: str) -> str:
    """A shortcut as stored (NFC, lower-case); Invalid when it is not one."""
    shortcut = unicodedata.normalize("NFC", unicodedata.normalize("NFC", raw).lower())
    if not shortcut or len(shortcut) > SHORTCUT_MAX or not _SHORTCUT.fullmatch(shortcut):
        raise Invalid(
            N_(
                "A shortcut is 1 to %(max)s letters, digits, - or _ "
                "(no spaces, and without the leading /)"
            ),
            params={"max": SHORTCUT_MAX},
            field="shortcut",
        )
    return shortcut


def _clean_body(raw: str) -> str:
    body = raw.strip()
    if not body:
        raise Invalid(N_("A canned answer needs some text"), params={}, field="body")
    if len(body) > BODY_MAX:
        raise Invalid(
            N_("A canned answer is at most %(max)s characters long"),
            params={"max": BODY_MAX},
            field="body",
        )
    if _UNSTORABLE.search(body):
        raise Invalid(
            N_("The text holds a NUL character or a broken one; remove it"),
            params={},
            field="body",
        )
    return body


def _seen_by(user_id: int | None) -> ColumnElement[bool]:
    """The answers a user sees: the shared ones and their own."""
    if user_id is None:
        return CannedResponse.owner_id.is_(None)
    return or_(CannedResponse.owner_id.is_(None), CannedResponse.owner_id == user_id)


def _folded(value: str) -> str:
    return unicodedata.normalize("NFC", value).casefold()


def search(session: Session, user_id: int | None, q: str | None = None) -> list[CannedResponse]:
    """What `user_id` sees matching `q` (shortcut or text), shortcut prefixes first; ≤ 50."""
    query = select(CannedResponse).where(_seen_by(user_id))
    query = query.order_by(CannedResponse.shortcut, CannedResponse.id)
    wanted = _folded((q or "").strip().removeprefix("/"))
    if not wanted:
        return list(session.scalars(query.limit(LIST_MAX)))
    if _UNSTORABLE.search(wanted):
        return []  # nothing stored holds one
    # Case-insensitive for every letter (SQLite's lower() knows only ASCII): the visible
    # set is small (MAX_SHARED + MAX_PERSONAL), so it is filtered here.
    ranked = []
    for row in session.scalars(query):
        shortcut = _folded(row.shortcut)
        if shortcut.startswith(wanted):
            ranked.append((0, row))
        elif wanted in shortcut or wanted in _folded(row.body):
            ranked.append((1, row))
    ranked.sort(key=lambda pair: pair[0])  # stable: by shortcut within each rank
    return [row for _, row in ranked[:LIST_MAX]]


def _visible(session: Session, canned_id: int, user_id: int | None) -> CannedResponse:
    """One answer the user sees; NotFound for a missing one or someone else's own."""
    row = session.scalar(
        select(CannedResponse).where(CannedResponse.id == canned_id, _seen_by(user_id))
    )
    if row is None:
        raise NotFound(N_("Canned answer %(id)s does not exist"), params={"id": canned_id})
    return row


def _editable(session: Session, canned_id: int, principal: Principal) -> CannedResponse:
    """An answer the caller may change: their own, or a shared one for an admin."""
    row = _visible(session, canned_id, principal.user_id)
    if row.owner_id is None and ROLE_RANK[principal.role] < ROLE_RANK["admin"]:
        raise Forbidden(N_("Only an administrator can change shared canned answers"), params={})
    return row


def _check_free(
    session: Session, shortcut: str, owner_id: int | None, exclude_id: int | None = None
) -> None:
    """Conflict when the shortcut would clash with one its users already see."""
    if session.get_bind().dialect.name == "postgresql":
        # Two requests taking the same shortcut at once: the second waits and sees the
        # first (SQLite has a single writer already).
        session.execute(_LOCK, {"key": f"canned:{shortcut}"})
    clash = select(CannedResponse.owner_id).where(CannedResponse.shortcut == shortcut)
    if exclude_id is not None:
        clash = clash.where(CannedResponse.id != exclude_id)
    if owner_id is not None:
        clash = clash.where(_seen_by(owner_id))
    owners = set(session.scalars(clash))
    if not owners:
        return
    if None in owners:
        raise Conflict(
            N_("/%(shortcut)s is already a shared canned answer"),
            params={"shortcut": shortcut},
            field="shortcut",
            code="shortcut_taken",
        )
    if owner_id is not None:
        raise Conflict(
            N_("You already have a canned answer /%(shortcut)s"),
            params={"shortcut": shortcut},
            field="shortcut",
            code="shortcut_taken",
        )
    raise Conflict(
        N_(
            "/%(shortcut)s is already someone's personal canned answer; "
            "a shared one would clash with it"
        ),
        params={"shortcut": shortcut},
        field="shortcut",
        code="shortcut_taken",
    )


def _check_room(session: Session, owner_id: int | None) -> None:
    mine = (
        CannedResponse.owner_id.is_(None)
        if owner_id is None
        else CannedResponse.owner_id == owner_id
    )
    count = session.scalar(select(func.count(CannedResponse.id)).where(mine)) or 0
    if owner_id is None and count >= MAX_SHARED:
        raise Conflict(
            N_("There are already %(max)s shared canned answers, the most allowed"),
            params={"max": MAX_SHARED},
        )
    if owner_id is not None and count >= MAX_PERSONAL:
        raise Conflict(
            N_("You already have %(max)s canned answers, the most allowed"),
            params={"max": MAX_PERSONAL},
        )


def create(
    session: Session, principal: Principal, shortcut: str, body: str, shared: bool
) -> CannedResponse:
    """A new canned answer: shared (admins) or the caller's own (audited)."""
    if shared and ROLE_RANK[principal.role] < ROLE_RANK["admin"]:
        raise Forbidden(N_("Only an administrator can make shared canned answers"), params={})
    owner_id = None if shared else principal.user_id
    if not shared and owner_id is None:
        raise Invalid(
            N_(
                "This token belongs to nobody, so it cannot have personal canned answers; "
                "use a token that acts as a user, or shared: true (administrators)"
            ),
            params={},
            field="shared",
        )
    clean = clean_shortcut(shortcut)
    clean_body = _clean_body(body)
    _check_free(session, clean, owner_id)
    _check_room(session, owner_id)
    row = CannedResponse(
        shortcut=clean, body=clean_body, owner_id=owner_id, created_by=principal.actor[:100]
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        principal.actor,
        "canned_response.create",
        f"canned_response:{row.id}",
        {"shortcut": clean},
    )
    return row


def update(
    session: Session,
    canned_id: int,
    principal: Principal,
    shortcut: str | None = None,
    body: str | None = None,
) -> CannedResponse:
    """Change an answer's shortcut or text (None: unchanged); audited when it changes."""
    row = _editable(session, canned_id, principal)
    clean = clean_shortcut(shortcut) if shortcut is not None else row.shortcut
    clean_body = _clean_body(body) if body is not None else row.body
    if clean != row.shortcut:
        _check_free(session, clean, row.owner_id, exclude_id=row.id)
    if (clean, clean_body) == (row.shortcut, row.body):
        return row
    details = {"shortcut": clean}
    if clean != row.shortcut:
        details["from"] = row.shortcut
    row.shortcut, row.body = clean, clean_body
    session.flush()
    audit.record(
        session, principal.actor, "canned_response.update", f"canned_response:{row.id}", details
    )
    return row


def delete(session: Session, canned_id: int, principal: Principal) -> None:
    """Delete an answer (audited with its shortcut)."""
    row = _editable(session, canned_id, principal)
    audit.record(
        session,
        principal.actor,
        "canned_response.delete",
        f"canned_response:{row.id}",
        {"shortcut": row.shortcut},
    )
    session.delete(row)
    session.flush()


@dataclass(frozen=True)
class Rendered:
    """An answer filled in for one customer, and what sending it would cost."""

    text: str
    segments: int
    encoding: str
    missing: list[str]  # variables with no value here, and unknown ones


def _variables(session: Session, number: str, principal: Principal) -> dict[str, str | None]:
    """Every variable a template may use, with its value here (None: no value).

    The profile gives contact.name (the edited name, else the one the customer gave) and
    contact.<key> for each custom attribute; an undefined key stays as written.
    """
    return {
        **profiles.template_values(session, number),
        "contact.phone": number,
        "agent.name": user_name(session, principal.user_id),
    }


def render(session: Session, canned_id: int, number: str, principal: Principal) -> Rendered:
    """An answer the caller sees, filled in for the customer at `number` (E.164)."""
    row = _visible(session, canned_id, principal.user_id)
    values = _variables(session, number, principal)
    missing: dict[str, None] = {}  # in order of appearance, once each

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        key = name.lower()
        if key not in values:
            missing[name] = None
            return match.group(0)
        value = values[key]
        if value is None:
            missing[key] = None
            return ""
        return value

    # One pass: a value that itself looks like {{…}} (a customer's name) stays text.
    filled = _VARIABLE.sub(fill, row.body)
    info = count_segments(filled)
    return Rendered(
        text=filled,
        segments=info.segments if filled else 0,
        encoding=info.encoding,
        missing=list(missing),
    )
