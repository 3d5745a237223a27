"""The Twilio account in effect: environment first, then the panel's settings, then defaults.

Read on every send and every webhook, so the database is consulted at most once per
`CACHE_SECONDS` per process; a save in this process drops the cache at once, other
processes see it within `CACHE_SECONDS`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from relaydesk.channels.twilio.gateway import TWILIO_API
from relaydesk.core import settings_store
from relaydesk.core.config import SANDBOX_DEFAULT_FROM, Settings, get_settings
from relaydesk.core.db import session_scope
from relaydesk.core.i18n import N_

Mode = Literal["sandbox", "live"]
Source = Literal["env", "panel", "default"]

CACHE_SECONDS = 2.0

# The `settings` rows behind each field the panel can change.
PANEL_KEYS: dict[str, str] = {
    "mode": "twilio.mode",
    "account_sid": "twilio.account_sid",
    "auth_token": "twilio.auth_token",
    "default_from": "twilio.default_from",
    "whatsapp_from": "twilio.whatsapp_from",
    "messaging_service_sid": "twilio.messaging_service_sid",
    "public_base_url": "public_base_url",
}
SECRET_KEYS = frozenset({PANEL_KEYS["auth_token"]})

# The environment variable that overrides each field.
ENV_NAMES: dict[str, str] = {
    "mode": "TWILIO_MODE",
    "account_sid": "TWILIO_ACCOUNT_SID",
    "auth_token": "TWILIO_AUTH_TOKEN",
    "default_from": "TWILIO_DEFAULT_FROM",
    "whatsapp_from": "TWILIO_WHATSAPP_FROM",
    "messaging_service_sid": "TWILIO_MESSAGING_SERVICE_SID",
    "public_base_url": "PUBLIC_BASE_URL",
    "api_base": "TWILIO_API_BASE_URL",
    "signature_validation": "TWILIO_VALIDATE_SIGNATURE",
}


@dataclass(frozen=True)
class TwilioAccount:
    """Everything needed to talk to Twilio (or the emulator) and to be reached by it."""

    mode: Mode
    account_sid: str
    auth_token: str
    default_from: str | None
    whatsapp_from: str | None
    messaging_service_sid: str | None
    public_base_url: str
    api_base: str
    sources: Mapping[str, Source] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def sandbox(self) -> bool:
        """True when the emulator stands in for Twilio."""
        return self.mode == "sandbox"

    @property
    def status_callback_url(self) -> str:
        """Where Twilio posts delivery statuses of the messages we send."""
        return f"{self.public_base_url}/twilio/status"


@dataclass(frozen=True)
class PanelValues:
    """The panel's stored Twilio values (token decrypted) and why any could not be used."""

    values: Mapping[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()


def env_values(settings: Settings) -> dict[str, str | None]:
    """The fields the environment sets (None where it does not)."""
    return {
        "mode": settings.twilio_mode if settings.mode_env_var else None,
        "account_sid": settings.twilio_account_sid,
        "auth_token": settings.twilio_auth_token,
        "default_from": settings.twilio_default_from,
        "whatsapp_from": settings.twilio_whatsapp_from,
        "messaging_service_sid": settings.twilio_messaging_service_sid,
        "public_base_url": settings.public_base_url,
    }


def live_missing(values: Mapping[str, str | None]) -> list[str]:
    """What live mode still needs, in words, given the configured values."""
    needed = (("account_sid", N_("an Account SID")), ("auth_token", N_("an auth token")))
    missing = [label for name, label in needed if not values.get(name)]
    if not (values.get("default_from") or values.get("messaging_service_sid")):
        missing.append(N_("a sender number (default_from) or a Messaging Service"))
    return missing


def resolve(settings: Settings, panel: PanelValues) -> TwilioAccount:
    """Merge environment, panel and defaults into the account in effect (no I/O)."""
    env = env_values(settings)
    sources: dict[str, Source] = {}
    configured: dict[str, str | None] = {}
    for name in PANEL_KEYS:
        if env[name]:
            configured[name], sources[name] = env[name], "env"
        elif panel.values.get(name):
            configured[name], sources[name] = panel.values[name], "panel"
        else:
            configured[name], sources[name] = None, "default"
    problems = list(panel.problems)
    mode: Mode = "live" if configured["mode"] == "live" else "sandbox"
    if mode == "live" and sources["mode"] == "panel":
        missing = live_missing(configured)
        if missing:
            # Sending live without them would fail every message; the emulator at least
            # keeps them visible. The panel shows why.
            verb = "is" if len(missing) == 1 else "are"
            problems.append(
                f"Live mode is selected but {', '.join(missing)} {verb} missing; "
                "running in sandbox mode until then"
            )
            mode, sources["mode"] = "sandbox", "default"
    public = configured["public_base_url"] or f"http://127.0.0.1:{settings.port}"
    if mode == "sandbox":
        # Panel credentials are for live Twilio only: the emulator knows the env ones.
        return _sandbox_account(settings, configured, sources, public, tuple(problems))
    return TwilioAccount(
        mode="live",
        account_sid=configured["account_sid"] or "",
        auth_token=configured["auth_token"] or "",
        default_from=configured["default_from"],
        whatsapp_from=configured["whatsapp_from"],
        messaging_service_sid=configured["messaging_service_sid"],
        public_base_url=public,
        api_base=settings.twilio_api_base_url or TWILIO_API,
        sources={**sources, "api_base": "env" if settings.twilio_api_base_url else "default"},
        problems=tuple(problems),
    )


def _sandbox_account(
    settings: Settings,
    configured: Mapping[str, str | None],
    sources: Mapping[str, Source],
    public: str,
    problems: tuple[str, ...],
) -> TwilioAccount:
    env = env_values(settings)
    out: dict[str, Source] = {name: "env" if env[name] else "default" for name in PANEL_KEYS}
    out["mode"] = sources["mode"]
    out["public_base_url"] = sources["public_base_url"]
    out["api_base"] = "env" if settings.twilio_api_base_url else "default"
    return TwilioAccount(
        mode="sandbox",
        account_sid=settings.account_sid,
        auth_token=settings.auth_token,
        default_from=settings.twilio_default_from or SANDBOX_DEFAULT_FROM,
        whatsapp_from=settings.twilio_whatsapp_from,
        messaging_service_sid=settings.twilio_messaging_service_sid,
        public_base_url=public,
        api_base=settings.twilio_api_base,
        sources=out,
        problems=problems,
    )


def read_panel(session: Session) -> PanelValues:
    """The panel's Twilio values from the `settings` table, through `session`."""
    snapshot = settings_store.read(session, PANEL_KEYS.values())
    by_key = {key: name for name, key in PANEL_KEYS.items()}
    values = {
        by_key[key]: value
        for key, value in snapshot.values.items()
        if isinstance(value, str) and value
    }
    problems = tuple(
        f"The stored {by_key[key].replace('_', ' ')} cannot be decrypted with the current "
        "SECRET_KEY (it changed since it was saved); enter it again"
        for key in sorted(snapshot.unreadable)
    )
    return PanelValues(values, problems)


_lock = threading.Lock()
_panel: tuple[float, PanelValues] | None = None
_generation = 0
_memo: tuple[Settings, PanelValues, tuple[Any, ...], TwilioAccount] | None = None


def current_account() -> TwilioAccount:
    """The account in effect now (environment wins, then the panel, then defaults)."""
    panel = _fresh_panel() or _load_panel()
    return _resolved(get_settings(), panel)


async def current_account_async() -> TwilioAccount:
    """`current_account` for the event loop: a database read, when due, runs in a thread."""
    panel = _fresh_panel()
    if panel is None:
        return await run_in_threadpool(current_account)
    return _resolved(get_settings(), panel)


def invalidate() -> None:
    """Forget the cached panel values; the next call reads the database again."""
    global _panel, _generation
    with _lock:
        _panel = None
        _generation += 1


def _fresh_panel() -> PanelValues | None:
    entry = _panel
    if entry is not None and time.monotonic() < entry[0]:
        return entry[1]
    return None


def _load_panel() -> PanelValues:
    global _panel
    with _lock:
        entry = _panel
        if entry is not None and time.monotonic() < entry[0]:
            return entry[1]  # another thread loaded it while we waited
        generation = _generation
    with session_scope(write=False) as session:
        values = read_panel(session)
    with _lock:
        # A save that happened during the read may not be in it: do not keep it then.
        if generation == _generation:
            _panel = (time.monotonic() + CACHE_SECONDS, values)
    return values


def _resolved(settings: Settings, panel: PanelValues) -> TwilioAccount:
    """`resolve`, memoised: the hot paths call this thousands of times a second."""
    global _memo
    # Settings values are compared each time: tests and the CLI change them in place.
    env = (*env_values(settings).values(), settings.port, settings.twilio_api_base_url)
    memo = _memo
    if memo is not None and memo[0] is settings and memo[1] is panel and memo[2] == env:
        return memo[3]
    account = resolve(settings, panel)
    _memo = (settings, panel, env, account)
    return account


settings_store.on_change(invalidate)
