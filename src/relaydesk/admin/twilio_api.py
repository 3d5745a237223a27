"""REST routes for the Twilio connection settings (administrators only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from relaydesk.channels.twilio import settings as twilio_settings
from relaydesk.channels.twilio.schemas import TwilioSettingsIn
from relaydesk.deps import Admin, SessionDep, WriteSessionDep

router = APIRouter(prefix="/api/settings/twilio", tags=["settings"])

# The API document describes these answers as JSON objects without a schema of their own,
# so the routes declare dict[str, Any] and send the model dumped (declaring
# TwilioSettingsOut as the response model would change the published document).


@router.get("")
def read_twilio_settings(principal: Admin, session: SessionDep) -> dict[str, Any]:
    """The Twilio settings in effect and where each comes from; the auth token is masked."""
    return twilio_settings.twilio_settings_view(session).model_dump(mode="json")


@router.put(
    "",
    responses={
        409: {"description": "The field is set in the environment"},
        422: {"description": "Invalid value, or live mode without what it needs"},
    },
)
def update_twilio_settings(
    changes: TwilioSettingsIn, principal: Admin, session: WriteSessionDep
) -> dict[str, Any]:
    """Change the panel's Twilio settings; omitted fields stay, "" or null clears one."""
    view = twilio_settings.update_twilio_settings(session, changes, principal.actor)
    return view.model_dump(mode="json")


@router.post("/test")
def test_twilio_connection(principal: Admin) -> dict[str, Any]:
    """Fetch the account with the settings in effect and say whether it worked."""
    return twilio_settings.test_connection()
