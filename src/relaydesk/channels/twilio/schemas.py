"""What the settings API accepts for the Twilio connection."""

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
