"""The automation switches and texts, stored in `settings` (the API key encrypted).

Read fresh by every pipeline run: a switch takes effect with the next inbound message,
and the time a mode was switched on is kept so older messages never get an answer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from relaydesk.ai.credentials import PANEL_KEY, PANEL_SECRET_KEY, resolve
from relaydesk.ai.providers import LLMConfig, default_local_model_path
from relaydesk.core import settings_store
from relaydesk.core.config import get_settings
from relaydesk.core.db import utcnow

AUTO_REPLY_KEY = "automation.auto_reply"
AI_KEY = PANEL_KEY  # the AI tab; its OpenAI key and address are read by ai.credentials
AI_SECRET_KEY = PANEL_SECRET_KEY
RULES_KEY = "automation.rules"

Provider = Literal["openai", "local"]
LOCAL_MODEL_LABEL = "smollm2-135m-instruct"

DEFAULT_HELP = "To stop messages reply STOP, to start again reply START. For help write to us here."


@dataclass(frozen=True)
class AutoReply:
    """Classic auto-reply: one fixed text for every new message."""

    enabled: bool = False
    message: str = ""
    enabled_at: datetime | None = None
    # Switched off because AI took over; switching AI off brings it back.
    suspended_by_ai: bool = False


@dataclass(frozen=True)
class AIConfig:
    """The global AI auto-reply and the model every assistant uses by default."""

    enabled: bool = False
    provider: Provider = "openai"
    model: str = "gpt-4o-mini"
    temperature: float = 0.7
    system_prompt: str = (
        "You answer customers' text messages for the business. Be brief, friendly and "
        "concrete, answer in the customer's language, and never invent prices or facts."
    )
    history_limit: int = 12
    max_reply_segments: int = 3
    base_url: str | None = None
    fallback_message: str = ""
    knowledge_index: str | None = None  # ground answers on this knowledge index
    voice_replies: bool = False  # answer voice notes with a voice note
    enabled_at: datetime | None = None
    api_key: str | None = None  # panel-entered; never returned


@dataclass(frozen=True)
class Rules:
    """What holds for every automatic answer."""

    help_message: str = DEFAULT_HELP
    start_message: str = ""
    takeover_minutes: int = 60
    loop_guard_per_hour: int = 10
    debounce_seconds: float = 5.0


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _stored(values: dict[str, Any], key: str) -> dict[str, Any]:
    raw = values.get(key)
    return dict(raw) if isinstance(raw, dict) else {}


def _known(cls: Any, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def read_auto_reply(session: Session) -> AutoReply:
    """The classic auto-reply as stored."""
    data = _stored(settings_store.read(session, [AUTO_REPLY_KEY]).values, AUTO_REPLY_KEY)
    data["enabled_at"] = _parse_time(data.get("enabled_at"))
    return AutoReply(**_known(AutoReply, data))


def read_ai(session: Session) -> tuple[AIConfig, bool]:
    """The AI configuration, and whether a stored API key could not be decrypted."""
    snapshot = settings_store.read(session, [AI_KEY, AI_SECRET_KEY])
    data = _stored(snapshot.values, AI_KEY)
    data["enabled_at"] = _parse_time(data.get("enabled_at"))
    key = snapshot.values.get(AI_SECRET_KEY)
    data["api_key"] = key if isinstance(key, str) and key else None
    return AIConfig(**_known(AIConfig, data)), AI_SECRET_KEY in snapshot.unreadable


def read_rules(session: Session) -> Rules:
    """The rules for every automatic answer."""
    data = _stored(settings_store.read(session, [RULES_KEY]).values, RULES_KEY)
    return Rules(**_known(Rules, data))


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


def llm_config(
    config: AIConfig, *, model: str | None = None, temperature: float | None = None
) -> LLMConfig:
    """The provider call settings in effect: environment first, then the panel's values."""
    settings = get_settings()
    if config.provider == "local":
        return LLMConfig(
            provider="local",
            model=model or LOCAL_MODEL_LABEL,
            temperature=config.temperature if temperature is None else temperature,
            max_tokens=max_tokens_for(config.max_reply_segments),
            timeout=settings.llm_timeout_seconds,
            model_path=settings.llm_model_path or default_local_model_path(),
        )
    credentials = resolve(config.api_key, config.base_url, settings=settings)
    return LLMConfig(
        provider="openai",
        model=model or config.model,
        api_key=credentials.api_key,
        base_url=credentials.base_url,
        temperature=config.temperature if temperature is None else temperature,
        max_tokens=max_tokens_for(config.max_reply_segments),
        timeout=settings.llm_timeout_seconds,
    )


def max_tokens_for(segments: int) -> int:
    """Enough tokens for the allowed segments (a token is ~3 characters) with room to trim."""
    return max(64, segments * 160 // 3 + 40)
