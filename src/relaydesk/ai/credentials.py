"""The OpenAI key and address in effect, for every user of OpenAI (chat, embeddings, media).

The environment (OPENAI_API_KEY, OPENAI_BASE_URL) wins over what an administrator
entered in the panel's AI tab. The tab is stored in `settings` under PANEL_KEY (the
base URL among its other fields, which automation.settings reads) and the key,
encrypted, under PANEL_SECRET_KEY.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy.orm import Session

from relaydesk.core import settings_store
from relaydesk.core.config import Settings, get_settings

PANEL_KEY = "automation.ai"
PANEL_SECRET_KEY = "automation.ai.api_key"  # noqa: S105 (a settings row name)

KeySource = Literal["env", "panel", "none"]


@dataclass(frozen=True)
class OpenAICredentials:
    """An OpenAI key and base URL and where each came from; the key is never in a repr."""

    api_key: str | None = field(repr=False)
    base_url: str | None
    key_source: KeySource
    base_url_source: KeySource  # "panel": typed in the panel, so held to the network guard


def resolve(
    panel_key: str | None = None,
    panel_base_url: str | None = None,
    *,
    settings: Settings | None = None,
) -> OpenAICredentials:
    """The environment's key and base URL, else the panel's values given here."""
    settings = settings or get_settings()
    return OpenAICredentials(
        api_key=settings.openai_api_key or panel_key,
        base_url=settings.openai_base_url or panel_base_url,
        key_source=_source(settings.openai_api_key, panel_key),
        base_url_source=_source(settings.openai_base_url, panel_base_url),
    )


def _source(env: str | None, panel: str | None) -> KeySource:
    return "env" if env else "panel" if panel else "none"


def openai_credentials(session: Session) -> OpenAICredentials:
    """The key and base URL in effect: the environment first, then the panel's stored ones."""
    snapshot = settings_store.read(session, [PANEL_KEY, PANEL_SECRET_KEY])
    panel = snapshot.values.get(PANEL_KEY)
    base_url = panel.get("base_url") if isinstance(panel, dict) else None
    key = snapshot.values.get(PANEL_SECRET_KEY)
    return resolve(
        key if isinstance(key, str) and key else None,
        base_url if isinstance(base_url, str) and base_url else None,
    )
