"""The AI tab as stored: which model answers, with which prompt, key and limits.

Automation decides when the AI answers (automation.settings saves this tab, switching the
classic auto-reply off and on); the knowledge indexes' test box and summaries ask the same
model. Both read it here, so neither depends on the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.orm import Session

from relaydesk.ai.credentials import PANEL_KEY, PANEL_SECRET_KEY, resolve
from relaydesk.ai.providers import LLMConfig, default_local_model_path
from relaydesk.core import settings_store
from relaydesk.core.config import get_settings

AI_KEY = PANEL_KEY  # its OpenAI key and address are read by ai.credentials too
AI_SECRET_KEY = PANEL_SECRET_KEY

Provider = Literal["openai", "local"]
LOCAL_MODEL_LABEL = "smollm2-135m-instruct"

# What a fresh installation starts with, in its language (Settings.language); the AI tab
# changes them. The fallback goes to the customer when the model cannot answer.
DEFAULT_PROMPTS = {
    "en": (
        "You answer customers' text messages for the business. Be brief, friendly and "
        "concrete, answer in the customer's language, and never invent prices or facts."
    ),
    "pl": (
        "Odpowiadasz na wiadomości tekstowe klientów w imieniu firmy. Pisz krótko, "
        "uprzejmie i konkretnie, odpowiadaj w języku klienta i nigdy nie wymyślaj cen "
        "ani faktów."
    ),
}
DEFAULT_FALLBACKS = {
    "en": "Sorry, we cannot answer automatically right now. We will write back as soon as we can.",
    "pl": "Przepraszamy, nie możemy teraz odpowiedzieć automatycznie. Odpiszemy najszybciej, "
    "jak to możliwe.",
}


@dataclass(frozen=True)
class AIConfig:
    """The global AI auto-reply and the model every assistant uses by default."""

    enabled: bool = False
    provider: Provider = "openai"
    model: str = "gpt-4o-mini"
    temperature: float = 0.7
    system_prompt: str = DEFAULT_PROMPTS["en"]
    history_limit: int = 12
    max_reply_segments: int = 3
    base_url: str | None = None
    fallback_message: str = DEFAULT_FALLBACKS["en"]  # "": nothing is sent on a failure
    knowledge_index: str | None = None  # ground answers on this knowledge index
    voice_replies: bool = False  # answer voice notes with a voice note
    enabled_at: datetime | None = None
    api_key: str | None = None  # panel-entered; never returned


def read_ai(session: Session) -> tuple[AIConfig, bool]:
    """The AI configuration, and whether a stored API key could not be decrypted."""
    snapshot = settings_store.read(session, [AI_KEY, AI_SECRET_KEY])
    data = settings_store.stored_dict(snapshot.values, AI_KEY)
    data["enabled_at"] = settings_store.parse_time(data.get("enabled_at"))
    language = get_settings().language
    data.setdefault("system_prompt", DEFAULT_PROMPTS[language])
    data.setdefault("fallback_message", DEFAULT_FALLBACKS[language])
    key = snapshot.values.get(AI_SECRET_KEY)
    data["api_key"] = key if isinstance(key, str) and key else None
    return AIConfig(
        **settings_store.known_fields(AIConfig, data)
    ), AI_SECRET_KEY in snapshot.unreadable


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
