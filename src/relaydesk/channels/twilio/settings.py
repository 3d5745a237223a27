"""The Twilio connection as an administrator sees and changes it (panel and API)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session
from twilio.base.exceptions import TwilioException

from relaydesk.channels.twilio.account import (
    ENV_NAMES,
    PANEL_KEYS,
    SECRET_KEYS,
    TwilioAccount,
    current_account,
    env_values,
    live_missing,
    read_panel,
    resolve,
)
from relaydesk.channels.twilio.gateway import TWILIO_API, GatewayError, TwilioGateway, make_client
from relaydesk.channels.twilio.numbers import WHATSAPP_PREFIX, InvalidNumber, normalize
from relaydesk.channels.twilio.schemas import (
    SandboxAccountOut,
    SandboxTokenOut,
    TwilioActiveOut,
    TwilioSettingOut,
    TwilioSettingsIn,
    TwilioSettingsOut,
    TwilioSwitchOut,
    TwilioTokenOut,
    TwilioWebhookUrlsOut,
)
from relaydesk.core import settings_store
from relaydesk.core.config import SANDBOX_CREDENTIALS_FILE, Settings, get_settings
from relaydesk.core.errors import Conflict, Invalid
from relaydesk.core.i18n import N_

log = logging.getLogger(__name__)

ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
MASK = "••••"
TEST_TIMEOUT_SECONDS = 10.0


def twilio_settings_view(session: Session) -> TwilioSettingsOut:
    """The Twilio settings with their sources, for the panel and the API; no secret values."""
    settings = get_settings()
    panel = read_panel(session)
    account = resolve(settings, panel)
    env = env_values(settings)

    def configured(name: str) -> TwilioSettingOut:
        # What live mode uses: the sandbox's own credentials are shown under "active".
        if env[name]:
            return TwilioSettingOut(value=env[name], source="env")
        if panel.values.get(name):
            return TwilioSettingOut(value=panel.values[name], source="panel")
        return TwilioSettingOut(value=None, source="default")

    token = configured("auth_token")  # never shown: whether it is set, and masked
    return TwilioSettingsOut(
        mode=TwilioSettingOut(value=account.mode, source=account.sources["mode"]),
        account_sid=configured("account_sid"),
        auth_token=TwilioTokenOut(
            set=token.value is not None, masked=_masked(token.value), source=token.source
        ),
        default_from=configured("default_from"),
        whatsapp_from=configured("whatsapp_from"),
        messaging_service_sid=configured("messaging_service_sid"),
        public_base_url=configured("public_base_url"),
        signature_validation=TwilioSwitchOut(
            value=settings.twilio_validate_signature,
            source="env" if "twilio_validate_signature" in settings.model_fields_set else "default",
        ),
        webhook_urls=TwilioWebhookUrlsOut(
            inbound=f"{account.public_base_url}/twilio/inbound",
            status=account.status_callback_url,
        ),
        active=TwilioActiveOut.model_validate(account),
        live_missing=live_missing({n: configured(n).value for n in PANEL_KEYS}),
        problems=list(account.problems),
        env_names=dict(ENV_NAMES),
        sandbox=_sandbox_view(account, settings) if account.sandbox else None,
    )


def _sandbox_view(account: TwilioAccount, settings: Settings) -> SandboxAccountOut:
    """The emulator's account; its token only masked (the panel shows it on request)."""
    return SandboxAccountOut(
        account_sid=account.account_sid,
        auth_token=SandboxTokenOut(
            masked=_masked(account.auth_token),
            source="env" if settings.twilio_auth_token else "generated",
        ),
        credentials_file=str(settings.data_dir / SANDBOX_CREDENTIALS_FILE),
    )


def update_twilio_settings(
    session: Session, changes: TwilioSettingsIn, actor: str
) -> TwilioSettingsOut:
    """Validate and store the changes (audited, token encrypted); returns the new view.

    Fields set in the environment cannot be changed here (409). Nothing is committed:
    the caller's unit of work does that, and the cached account is dropped after it
    (settings_store calls `invalidate` after the commit).
    """
    settings = get_settings()
    env = env_values(settings)
    given = changes.model_fields_set - {"clear_auth_token"}
    updates: dict[str, str | None] = {}
    problems: list[dict[str, str]] = []
    for name in sorted(given):
        raw = getattr(changes, name)
        text = raw.strip() if isinstance(raw, str) else raw
        if name == "auth_token" and not text:
            continue  # write-only: a blank field in a form means "keep it"
        try:
            value = _VALIDATORS[name](text, settings) if text else None
        except ValueError as exc:
            if not env[name]:
                problems.append({"field": name, "problem": str(exc)})
                continue
            value = None
        if env[name]:
            if value == env[name]:
                continue  # the form sent the environment's value back unchanged
            template, params = _env_conflict(name, settings)
            raise Conflict(template, params=params, field=name)
        updates[name] = value
    if changes.clear_auth_token:
        if "auth_token" in updates:
            problems.append(
                {
                    "field": "auth_token",
                    "problem": N_("give a new auth_token or clear it, not both"),
                }
            )
        elif env["auth_token"]:
            template, params = _env_conflict("auth_token", settings)
            raise Conflict(template, params=params, field="auth_token")
        else:
            updates["auth_token"] = None
    if problems:
        # One "field: problem" per problem; the panel translates each problem it knows.
        template = "; ".join(f"%(field{i})s: %(problem{i})s" for i in range(len(problems)))
        params = {}
        for i, p in enumerate(problems):
            params[f"field{i}"], params[f"problem{i}"] = p["field"], p["problem"]
        raise Invalid(template, params=params, fields=problems)

    stored = dict(read_panel(session).values)
    merged = {**stored, **updates}
    if not env["mode"] and merged.get("mode") == "live":
        missing = live_missing({n: env[n] or merged.get(n) for n in PANEL_KEYS})
        if missing:
            raise Invalid(
                N_("Live mode needs %(missing)s; set them first or stay in sandbox mode"),
                params={"missing": missing},
                field="mode",
                missing=missing,
            )
    settings_store.save(
        session,
        {PANEL_KEYS[name]: value for name, value in updates.items()},
        actor=actor,
        action="settings.twilio.update",
        target="twilio",
        secret_keys=SECRET_KEYS,
    )
    return twilio_settings_view(session)


# What the connection test says, whole sentences per endpoint (the sandbox emulator, Twilio
# itself, a Twilio API elsewhere) so that each reads right in every language.
_TEST_TEXTS: dict[str, dict[str, str]] = {
    "sandbox": {
        "unreachable": N_("Could not reach the sandbox emulator at %(api_base)s: %(reason)s"),
        "refused": N_("the sandbox emulator refused the request (error %(code)s): %(reason)s"),
        "unreadable": N_(
            "the sandbox emulator at %(api_base)s did not answer like Twilio: %(error)s"
        ),
        "inactive": N_("Connected to the sandbox emulator, but account %(name)s is %(status)s"),
        "connected": N_(
            "Connected to the sandbox emulator: account %(name)s (%(type)s, %(status)s)"
        ),
    },
    "twilio": {
        "unreachable": N_("Could not reach Twilio at %(api_base)s: %(reason)s"),
        "refused": N_("Twilio refused the request (error %(code)s): %(reason)s"),
        "unreadable": N_("Twilio at %(api_base)s did not answer like Twilio: %(error)s"),
        "inactive": N_("Connected to Twilio, but account %(name)s is %(status)s"),
        "connected": N_("Connected to Twilio: account %(name)s (%(type)s, %(status)s)"),
    },
    "elsewhere": {
        "unreachable": N_(
            "Could not reach the Twilio API at %(api_base)s at %(api_base)s: %(reason)s"
        ),
        "refused": N_(
            "the Twilio API at %(api_base)s refused the request (error %(code)s): %(reason)s"
        ),
        "unreadable": N_(
            "the Twilio API at %(api_base)s at %(api_base)s did not answer like Twilio: %(error)s"
        ),
        "inactive": N_(
            "Connected to the Twilio API at %(api_base)s, but account %(name)s is %(status)s"
        ),
        "connected": N_(
            "Connected to the Twilio API at %(api_base)s: account %(name)s (%(type)s, %(status)s)"
        ),
    },
}


def test_connection() -> dict[str, Any]:
    """Fetch the account in effect through the SDK; never raises for vendor problems."""
    account = current_account()
    texts = _TEST_TEXTS[_where(account)]
    timeout = min(get_settings().twilio_timeout_seconds, TEST_TIMEOUT_SECONDS)
    gateway = TwilioGateway(
        make_client(account.api_base, account.account_sid, account.auth_token, timeout)
    )
    result: dict[str, Any] = {"ok": False, "mode": account.mode, "detail": "", "account": None}
    values: dict[str, Any] = {"api_base": account.api_base}
    try:
        remote = gateway.fetch_account()
    except GatewayError as exc:
        values["reason"] = exc.message
        if exc.code is None:
            result["detail"] = texts["unreachable"] % values
        else:
            result["detail"] = texts["refused"] % {**values, "code": exc.code}
        return result
    except TwilioException as exc:
        # A non-Twilio answer (e.g. a proxy's HTML page) that the SDK cannot read.
        log.warning("Twilio connection test: unreadable answer from %s", account.api_base)
        result["detail"] = texts["unreadable"] % {**values, "error": exc}
        return result
    result["account"] = {
        "sid": remote.sid,
        "friendly_name": remote.friendly_name,
        "status": remote.status,
        "type": remote.type,
    }
    values["name"] = f"'{remote.friendly_name}'" if remote.friendly_name else remote.sid
    values["status"] = remote.status
    if remote.status != "active":
        result["detail"] = texts["inactive"] % values
        return result
    result["ok"] = True
    result["detail"] = texts["connected"] % {**values, "type": remote.type}
    return result


def _where(account: TwilioAccount) -> str:
    """Which endpoint the account reaches: a key of `_TEST_TEXTS`."""
    if account.sandbox:
        return "sandbox"
    return "twilio" if account.api_base == TWILIO_API else "elsewhere"


def _masked(secret: str | None) -> str | None:
    if not secret:
        return None
    # Short values would be half revealed by their last four characters.
    return MASK + secret[-4:] if len(secret) >= 16 else MASK


def _env_conflict(name: str, settings: Settings) -> tuple[str, dict[str, Any]]:
    """The template and params of the Conflict for a setting the environment fixes."""
    if name == "mode" and settings.mode_env_var == "TWILIO_ACCOUNT_SID":
        return N_(
            "TWILIO_ACCOUNT_SID is set in the environment, which selects live mode; change it there"
        ), {}
    return N_("%(name)s is set in the environment; change it there"), {"name": ENV_NAMES[name]}


def _mode(value: str, settings: Settings) -> str:
    return value  # the schema allows only "sandbox" and "live"


def _account_sid(value: str, settings: Settings) -> str:
    if not ACCOUNT_SID.match(value):
        raise ValueError(
            N_(
                "an Account SID is 'AC' followed by 32 hexadecimal characters "
                "(see the Twilio Console's Account Info)"
            )
        )
    return value


def _auth_token(value: str, settings: Settings) -> str:
    if len(value) < 16 or any(ch.isspace() for ch in value):
        raise ValueError(N_("a Twilio auth token is 32 characters without spaces"))
    return value


def _service_sid(value: str, settings: Settings) -> str:
    if not SERVICE_SID.match(value):
        raise ValueError(
            N_("a Messaging Service SID is 'MG' followed by 32 hexadecimal characters")
        )
    return value


def _number(value: str, settings: Settings) -> str:
    if value.lower().startswith(WHATSAPP_PREFIX):
        raise ValueError(N_("give the number without 'whatsapp:'; use whatsapp_from for WhatsApp"))
    try:
        return normalize(value, settings.default_region)
    except InvalidNumber as exc:
        raise ValueError(str(exc)) from None


def _whatsapp(value: str, settings: Settings) -> str:
    bare = value[len(WHATSAPP_PREFIX) :] if value.lower().startswith(WHATSAPP_PREFIX) else value
    try:
        return WHATSAPP_PREFIX + normalize(bare, settings.default_region)
    except InvalidNumber as exc:
        raise ValueError(str(exc)) from None


def _url(value: str, settings: Settings) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in value:
        raise ValueError(f"'{value[:80]}' must be an address like https://relay.example.com")
    if parts.query or parts.fragment:
        raise ValueError(N_("the public address cannot have a '?query' or '#fragment'"))
    return value.rstrip("/")


_VALIDATORS: Mapping[str, Callable[[str, Settings], str]] = {
    "mode": _mode,
    "account_sid": _account_sid,
    "auth_token": _auth_token,
    "default_from": _number,
    "whatsapp_from": _whatsapp,
    "messaging_service_sid": _service_sid,
    "public_base_url": _url,
}
