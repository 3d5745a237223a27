"""Whether the pipeline could answer a new message at all, asked while it is stored.

With every mode off (no auto-reply, no AI, no number bound to an assistant, no
out-of-office answer of business hours) most messages need no follow-up job; skipping
it keeps webhook ingest at full speed. The answer is cached for a second; a change made
in this process drops it at commit, so only another process's switch can be seen up to
`CACHE_SECONDS` late.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from relaydesk.automation import settings as cfg
from relaydesk.automation.models import PhoneNumber
from relaydesk.channels.twilio.parsing import InboundRecord
from relaydesk.core import settings_store
from relaydesk.inbox import hours_settings

CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class Gate:
    """What could answer: any mode at all, and the HELP / START texts."""

    any_mode: bool
    help: bool
    start: bool


def _read(session: Session) -> Gate:
    classic = cfg.read_auto_reply(session)
    ai, _ = cfg.read_ai(session)
    rules = cfg.read_rules(session)
    bound = session.scalar(select(PhoneNumber.id).limit(1)) is not None
    out_of_office = hours_settings.read(session).answers
    return Gate(
        any_mode=bound
        or ai.enabled
        or out_of_office
        or (classic.enabled and bool(classic.message.strip())),
        help=bool(rules.help_message.strip()),
        start=bool(rules.start_message.strip()),
    )


_gate = settings_store.Cached(_read, CACHE_SECONDS)


def current() -> Gate:
    """The state in effect, read at most once per CACHE_SECONDS."""
    return _gate.get()


def wants(record: InboundRecord) -> bool:
    """True when the pipeline may have to answer this message."""
    gate = current()
    if record.opt_out == "STOP":
        return False  # recorded while storing; nothing is ever sent back
    if record.opt_out in ("HELP", "START"):
        if record.raw.get("OptOutType"):
            return False  # Twilio's Advanced Opt-Out answered already
        return gate.help if record.opt_out == "HELP" else gate.start
    return gate.any_mode
