"""The automation switches and texts, stored in `settings`; the AI tab's model is ai.settings.

Read fresh by every pipeline run: a switch takes effect with the next inbound message,
and the time a mode was switched on is kept so older messages never get an answer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from relaydesk.ai.settings import AI_KEY as AI_KEY
from relaydesk.ai.settings import AI_SECRET_KEY as AI_SECRET_KEY
from relaydesk.ai.settings import LOCAL_MODEL_LABEL as LOCAL_MODEL_LABEL
from relaydesk.ai.settings import AIConfig as AIConfig
from relaydesk.ai.settings import Provider as Provider
from relaydesk.ai.settings import llm_config as llm_config
from relaydesk.ai.settings import max_tokens_for as max_tokens_for
from relaydesk.ai.settings import read_ai as read_ai
from relaydesk.core import settings_store
from relaydesk.core.config import get_settings
from relaydesk.core.db import utcnow

AUTO_REPLY_KEY = "automation.auto_reply"
RULES_KEY = "automation.rules"

# The HELP answer a fresh installation gives, in its language (Settings.language).
DEFAULT_HELPS = {
    "en": "To stop messages reply STOP, to start again reply START. For help write to us here.",
    "pl": "Aby nie dostawać wiadomości, odpisz STOP; aby znów je dostawać, odpisz START. "
    "W innej sprawie napisz do nas tutaj.",
}
DEFAULT_HELP = DEFAULT_HELPS["en"]
# The answer to START (the customer subscribes again); "" sends nothing.
DEFAULT_STARTS = {
    "en": "Welcome back: you will get our messages again. Reply STOP to stop them.",
    "pl": "Witamy ponownie: znów będziesz otrzymywać nasze wiadomości. Aby z nich "
    "zrezygnować, odpisz STOP.",
}


@dataclass(frozen=True)
class AutoReply:
    """Classic auto-reply: one fixed text for every new message."""

    enabled: bool = False
    message: str = ""
    enabled_at: datetime | None = None
    # Switched off because AI took over; switching AI off brings it back.
    suspended_by_ai: bool = False


@dataclass(frozen=True)
class Rules:
    """What holds for every automatic answer."""

    help_message: str = DEFAULT_HELP
    start_message: str = DEFAULT_STARTS["en"]
    takeover_minutes: int = 60
    loop_guard_per_hour: int = 60  # a backstop: automation.loops catches the loops
    debounce_seconds: float = 5.0


def read_auto_reply(session: Session) -> AutoReply:
    """The classic auto-reply as stored."""
    data = settings_store.stored_dict(
        settings_store.read(session, [AUTO_REPLY_KEY]).values, AUTO_REPLY_KEY
    )
    data["enabled_at"] = settings_store.parse_time(data.get("enabled_at"))
    return AutoReply(**settings_store.known_fields(AutoReply, data))


def read_rules(session: Session) -> Rules:
    """The rules for every automatic answer."""
    data = settings_store.stored_dict(settings_store.read(session, [RULES_KEY]).values, RULES_KEY)
    language = get_settings().language
    data.setdefault("help_message", DEFAULT_HELPS[language])
    data.setdefault("start_message", DEFAULT_STARTS[language])
    return Rules(**settings_store.known_fields(Rules, data))


def _jsonable(obj: Any, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    out = {k: v for k, v in asdict(obj).items() if k not in drop}
    for k, v in out.items():
        if isinstance(v, datetime):
            out[k] = v.isoformat()
    return out


def save_auto_reply(session: Session, new: AutoReply, actor: str) -> AutoReply:
    """Store the classic auto-reply; switching it on starts the no-retro clock."""
    old = read_auto_reply(session)
    if new.enabled and not old.enabled:
        new = replace(new, enabled_at=utcnow(), suspended_by_ai=False)
    elif new.enabled:
        new = replace(new, enabled_at=old.enabled_at or utcnow())
    if new.enabled:
        ai, _ = read_ai(session)
        if ai.enabled:  # one global mode at a time: classic on means AI off
            _store_ai(session, replace(ai, enabled=False, enabled_at=None), actor)
    _store_classic(session, new, actor)
    return new


def save_ai(
    session: Session, new: AIConfig, actor: str, *, api_key: str | Literal[False] | None = False
) -> AIConfig:
    """Store the AI configuration (api_key False keeps the stored key, None clears it).

    Switching AI on suspends the classic auto-reply; switching it off brings the
    classic one back if AI had suspended it. Either switch starts the no-retro clock.
    """
    old, _ = read_ai(session)
    now = utcnow()
    if new.enabled and not old.enabled:
        new = replace(new, enabled_at=now)
    elif new.enabled:
        new = replace(new, enabled_at=old.enabled_at or now)
    else:
        new = replace(new, enabled_at=None)
    classic = read_auto_reply(session)
    if new.enabled and classic.enabled:
        _store_classic(session, replace(classic, enabled=False, suspended_by_ai=True), actor)
    elif not new.enabled and old.enabled and classic.suspended_by_ai:
        _store_classic(
            session, replace(classic, enabled=True, enabled_at=now, suspended_by_ai=False), actor
        )
    _store_ai(session, new, actor)
    if api_key is not False:
        settings_store.save(
            session,
            {AI_SECRET_KEY: api_key or None},
            actor=actor,
            action="automation.ai.api_key",
            target="ai",
            secret_keys={AI_SECRET_KEY},
        )
    return read_ai(session)[0]


def _store(session: Session, key: str, value: Any, actor: str, what: str) -> None:
    """Save one automation setting, audited as automation.<what>.update."""
    row = _jsonable(value, drop=("api_key",))
    settings_store.save(
        session, {key: row}, actor=actor, action=f"automation.{what}.update", target=what
    )


def _store_ai(session: Session, config: AIConfig, actor: str) -> None:
    _store(session, AI_KEY, config, actor, "ai")


def _store_classic(session: Session, config: AutoReply, actor: str) -> None:
    _store(session, AUTO_REPLY_KEY, config, actor, "auto_reply")


def save_rules(session: Session, rules: Rules, actor: str) -> Rules:
    """Store the rules for every automatic answer."""
    _store(session, RULES_KEY, rules, actor, "rules")
    return rules
