"""The voice-bot analytics settings: ElevenLabs API key (encrypted), agents, API address."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from relaydesk.core import settings_store
from relaydesk.core.config import get_settings
from relaydesk.core.errors import Invalid
from relaydesk.core.i18n import N_

CONFIG_KEY = "voicebot"
API_KEY_SETTING = "voicebot.api_key"
DEFAULT_BASE_URL = "https://api.elevenlabs.io"
# ElevenLabs ids such as "21m00Tcm4TlvDq8ikWAM" or "agent_01jx…"; they reach URLs,
# filters and download names, so nothing else is accepted.
AGENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_AGENTS = 20


@dataclass(frozen=True)
class VoicebotConfig:
    """What the sync needs. `api_key` is never shown; the view masks it."""

    agent_ids: list[str] = field(default_factory=list)
    api_key: str | None = None
    api_key_source: str = "none"  # env | panel | none
    api_key_unreadable: bool = False
    base_url: str = DEFAULT_BASE_URL

    @property
    def ready(self) -> bool:
        return bool(self.api_key and self.agent_ids)


def read(session: Session) -> VoicebotConfig:
    """The settings in effect: ELEVENLABS_API_KEY wins over the panel's key."""
    snapshot = settings_store.read(session, [CONFIG_KEY, API_KEY_SETTING])
    stored = snapshot.values.get(CONFIG_KEY)
    data: dict[str, Any] = dict(stored) if isinstance(stored, dict) else {}
    env = get_settings()
    panel_key = snapshot.values.get(API_KEY_SETTING)
    panel_key = panel_key if isinstance(panel_key, str) and panel_key else None
    key = env.elevenlabs_api_key or panel_key
    source = "env" if env.elevenlabs_api_key else ("panel" if panel_key else "none")
    return VoicebotConfig(
        agent_ids=[str(a) for a in data.get("agent_ids") or []],
        api_key=key,
        api_key_source=source,
        api_key_unreadable=API_KEY_SETTING in snapshot.unreadable,
        base_url=(env.elevenlabs_base_url or DEFAULT_BASE_URL).rstrip("/"),
    )


def view(session: Session) -> dict[str, Any]:
    """The settings as the API shows them: the key masked (its last 4 characters)."""
    config = read(session)
    key = config.api_key
    return {
        "agent_ids": config.agent_ids,
        "api_key_set": bool(key),
        "api_key_masked": f"••••{key[-4:]}" if key and len(key) > 8 else ("••••" if key else None),
        "api_key_source": config.api_key_source,
        "api_key_unreadable": config.api_key_unreadable,
        "base_url": config.base_url,
    }


def check_agent_id(value: str, *, field: str = "agent_id") -> str:
    """`value` if it is an ElevenLabs agent id, else Invalid saying what one looks like."""
    if not AGENT_ID.fullmatch(value):
        raise Invalid(
            N_("%(value)s is not an ElevenLabs agent id (1 to 64 letters, digits, - and _)"),
            params={"value": repr(value[:70])},
            field=field,
        )
    return value


def clean_agent_ids(values: list[str] | str) -> list[str]:
    """Agent ids from a list or from text (commas, spaces, new lines), de-duplicated."""
    items = re.split(r"[\s,;]+", values) if isinstance(values, str) else values
    out: list[str] = []
    for raw in items:
        value = str(raw).strip()
        if not value:
            continue
        check_agent_id(value, field="agent_ids")
        if value not in out:
            out.append(value)
    if len(out) > MAX_AGENTS:
        raise Invalid(
            N_("At most %(count)s agents"), params={"count": MAX_AGENTS}, field="agent_ids"
        )
    return out


def save(
    session: Session,
    *,
    agent_ids: list[str] | str | None,
    api_key: str | bool | None,
    actor: str,
) -> dict[str, Any]:
    """Store agent ids and/or the key (api_key False: keep; "" or None: clear). Audited."""
    if agent_ids is not None:
        settings_store.save(
            session,
            {CONFIG_KEY: {"agent_ids": clean_agent_ids(agent_ids)}},
            actor=actor,
            action="voicebot.settings.update",
            target="voicebot",
        )
    if api_key is not False:
        key = str(api_key or "").strip() or None
        if key is not None and (len(key) < 8 or len(key) > 200 or not key.isprintable()):
            raise Invalid(
                N_("That does not look like an ElevenLabs API key"), params={}, field="api_key"
            )
        settings_store.save(
            session,
            {API_KEY_SETTING: key},
            actor=actor,
            action="voicebot.api_key",
            target="voicebot",
            secret_keys={API_KEY_SETTING},
        )
    return view(session)
