"""Consent: the keywords that unsubscribe and resubscribe, and Twilio's "unsubscribed" error.

One place decides what counts as opting out, for the webhook path, the automatic answers
and the delivery path alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from relaydesk.contacts.models import Contact
from relaydesk.core import events
from relaydesk.core.db import utcnow
from relaydesk.core.i18n import N_

STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "REVOKE", "OPTOUT", "CANCEL"}
)
START_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})
# Twilio refuses a message to someone who replied STOP to this sender with this code.
UNSUBSCRIBED_ERROR = 21610


def opt_out_keyword(body: str, opt_out_type: str | None) -> str | None:
    """'STOP', 'START' or 'HELP' when the whole message is one of Twilio's keywords.

    Twilio's Advanced Opt-Out names the keyword it matched in `OptOutType`; that wins.
    """
    if opt_out_type in ("STOP", "START", "HELP"):
        return opt_out_type
    word = body.strip().strip(".!").upper()
    if word in STOP_WORDS:
        return "STOP"
    if word in START_WORDS:
        return "START"
    if word in HELP_WORDS:
        return "HELP"
    return None


def means_unsubscribed(error_code: int | None) -> bool:
    """True when Twilio's error says the recipient has unsubscribed from this sender."""
    return error_code == UNSUBSCRIBED_ERROR


def opt_out_reason(reason: str | None) -> tuple[str, dict[str, str]]:
    """The sentence refusing a message to an opted-out contact, and its values.

    A template (with `number` and `when` to fill in) per kind of stored reason, so the
    panel can say it in the person's language; the API's English is the same sentence.
    """
    text = (reason or "").strip()
    word = re.fullmatch(r"replied (.+)", text)
    if word:
        return N_(
            "%(number)s unsubscribed on %(when)s UTC (replied %(word)s); "
            "nothing can be sent until they text START"
        ), {"word": word.group(1)}
    code = re.fullmatch(r"Twilio error (\d+)", text)
    if code:
        return N_(
            "%(number)s unsubscribed on %(when)s UTC (Twilio error %(code)s); "
            "nothing can be sent until they text START"
        ), {"code": code.group(1)}
    if not text:
        return N_(
            "%(number)s unsubscribed on %(when)s UTC (opted out); "
            "nothing can be sent until they text START"
        ), {}
    return N_(
        "%(number)s unsubscribed on %(when)s UTC (%(reason)s); "
        "nothing can be sent until they text START"
    ), {"reason": text}


def opt_out(session: Session, contact_id: int, reason: str) -> None:
    """Never message this contact again (until they text START); keeps the first reason."""
    done = session.execute(
        update(Contact)
        .where(Contact.id == contact_id, Contact.opted_out_at.is_(None))
        .values(opted_out_at=utcnow(), opt_out_reason=reason)
    )
    if done.rowcount:  # type: ignore[attr-defined]
        emit_changes(session, "contact.opted_out", [contact_id])


def contact_data(contact: Contact) -> dict[str, Any]:
    """A contact as outgoing webhooks show it."""
    return {
        "id": contact.id,
        "phone": contact.phone,
        "channel": contact.channel,
        "profile_name": contact.profile_name,
        "opted_out": contact.opted_out_at is not None,
        "opted_out_at": contact.opted_out_at.isoformat() if contact.opted_out_at else None,
        "opt_out_reason": contact.opt_out_reason,
        "opted_in_at": contact.opted_in_at.isoformat() if contact.opted_in_at else None,
    }


def emit_changes(session: Session, event_type: str, contact_ids: Sequence[int]) -> None:
    """Queue contact.opted_out / contact.opted_in for these contacts (when anyone listens)."""
    if not contact_ids or not events.wanted(event_type, session):
        return
    session.flush()
    rows = session.scalars(
        select(Contact)
        .where(Contact.id.in_(list(contact_ids)))
        .order_by(Contact.id)
        .execution_options(populate_existing=True)
    )
    events.emit(session, event_type, [(row.phone, contact_data(row)) for row in rows])
