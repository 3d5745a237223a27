"""Whether the pipeline could answer a new message at all, asked while it is stored.

With every mode off (no auto-reply, no AI, no number bound to an assistant, no
out-of-office answer of business hours) most messages need no follow-up job; skipping
it keeps webhook ingest at full speed. The answer is cached for a second; a change made
in this process drops it at commit, so only another process's switch can be seen up to
`CACHE_SECONDS` late.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import select

from relaydesk.automation import settings as cfg
from relaydesk.automation.models import PhoneNumber
from relaydesk.channels.twilio.parsing import InboundRecord
from relaydesk.core import settings_store
from relaydesk.core.db import session_scope
from relaydesk.inbox import hours_settings

CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class Gate:
    """What could answer: any mode at all, and the HELP / START texts."""

    any_mode: bool
    help: bool
    start: bool


_lock = threading.Lock()
_cached: tuple[float, Gate] | None = None


def invalidate() -> None:
    """Forget the cached state (after a commit that changed automation)."""
    global _cached
    with _lock:
        _cached = None


settings_store.on_change(invalidate)


def current() -> Gate:
    """The state in effect, read at most once per CACHE_SECONDS."""
    global _cached
    with _lock:
        if _cached is not None and time.monotonic() - _cached[0] < CACHE_SECONDS:
            return _cached[1]
    with session_scope(write=False) as session:
        classic = cfg.read_auto_reply(session)
        ai, _ = cfg.read_ai(session)
        rules = cfg.read_rules(session)
        bound = session.scalar(select(PhoneNumber.id).limit(1)) is not None
        out_of_office = hours_settings.read(session).answers
    gate = Gate(
        any_mode=bound
        or ai.enabled
        or out_of_office
        or (classic.enabled and bool(classic.message.strip())),
        help=bool(rules.help_message.strip()),
        start=bool(rules.start_message.strip()),
    )
    with _lock:
        _cached = (time.monotonic(), gate)
    return gate


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
