"""The Twilio connection settings: what the settings API accepts and what it shows."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from relaydesk.core.credentials import KeyField


class TwilioSettingsIn(BaseModel):
    """Changes to the panel's Twilio settings: omitted fields stay, null or "" clears one.

    `auth_token` is write-only: omitted, null or "" keeps the stored token; only
    `clear_auth_token: true` removes it.
    """

    model_config = ConfigDict(extra="forbid")

    mode: Literal["sandbox", "live"] | None = None
    account_sid: str | None = Field(None, max_length=100)
    auth_token: KeyField = Field(None, max_length=200)
    clear_auth_token: bool = False
    default_from: str | None = Field(None, max_length=60)
    whatsapp_from: str | None = Field(None, max_length=70)
    messaging_service_sid: str | None = Field(None, max_length=100)
    public_base_url: str | None = Field(None, max_length=500)


Source = Literal["env", "panel", "default"]


class TwilioSettingOut(BaseModel):
    """One setting and where its value comes from."""

    value: str | None
    source: Source


class TwilioTokenOut(BaseModel):
    """The auth token: whether it is set and its last characters, never its value."""

    set: bool
    masked: str | None
    source: Source


class TwilioSwitchOut(BaseModel):
    """A switch only the environment sets."""

    value: bool
    source: Literal["env", "default"]


class TwilioWebhookUrlsOut(BaseModel):
    """The addresses to give Twilio."""

    inbound: str
    status: str


class TwilioActiveOut(BaseModel):
    """The account in effect (read from a TwilioAccount; its token is not a field)."""

    model_config = ConfigDict(from_attributes=True)

    mode: Literal["sandbox", "live"]
    account_sid: str
    api_base: str
    default_from: str | None
    whatsapp_from: str | None
    messaging_service_sid: str | None


class SandboxTokenOut(BaseModel):
    """The emulator's auth token, masked."""

    masked: str | None
    source: Literal["env", "generated"]


class SandboxAccountOut(BaseModel):
    """The emulator's account (the panel shows its token on request)."""

    account_sid: str
    auth_token: SandboxTokenOut
    credentials_file: str


class TwilioSettingsOut(BaseModel):
    """The Twilio settings with their sources; no secret values."""

    mode: TwilioSettingOut
    account_sid: TwilioSettingOut
    auth_token: TwilioTokenOut
    default_from: TwilioSettingOut
    whatsapp_from: TwilioSettingOut
    messaging_service_sid: TwilioSettingOut
    public_base_url: TwilioSettingOut
    signature_validation: TwilioSwitchOut
    webhook_urls: TwilioWebhookUrlsOut
    active: TwilioActiveOut
    live_missing: list[str]
    problems: list[str]
    env_names: dict[str, str]
    sandbox: SandboxAccountOut | None
