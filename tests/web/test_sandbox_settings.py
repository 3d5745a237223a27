"""The sandbox's credentials on the Settings page: admins only, the token on request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from relaydesk.core.config import get_settings
from relaydesk.core.models import AuditEntry
from tests.conftest import AUTH_TOKEN
from tests.web.conftest import MakeUser, browser_sign_in, csrf_of

Panel = Callable[[str], httpx.Client]
NewPage = Callable[..., Any]
REVEAL = "/settings/sandbox-credentials"


def test_settings_page_shows_the_sandbox_credentials_to_an_admin(panel: Panel, db: Any) -> None:
    settings = get_settings()
    admin = panel("admin")
    page = admin.get("/settings")
    assert page.status_code == 200
    assert settings.account_sid in page.text
    # The token itself only after asking for it: the page may be on a shared screen.
    assert settings.auth_token not in page.text
    assert f'hx-post="{REVEAL}"' in page.text

    shown = admin.post(REVEAL, headers={"X-CSRF-Token": csrf_of(admin), "HX-Request": "true"})
    assert shown.status_code == 200, shown.text
    assert settings.auth_token in shown.text
    assert shown.headers["cache-control"] == "no-store"
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "settings.sandbox.reveal"))
    assert entry is not None and entry.actor.startswith("user:")
    assert settings.auth_token not in str(entry.details)


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_operators_and_viewers_never_get_the_sandbox_token(
    panel: Panel, make_token: Callable[[str], str], server: Any, role: str
) -> None:
    token = get_settings().auth_token
    client = panel(role)
    page = client.get("/settings")
    assert page.status_code == 403 and token not in page.text
    revealed = client.post(REVEAL, headers={"X-CSRF-Token": csrf_of(client)})
    assert revealed.status_code == 403 and token not in revealed.text
    api = httpx.get(
        f"{server.url}/api/settings/twilio",
        headers={"Authorization": f"Bearer {make_token(role)}"},
    )
    assert api.status_code == 403 and token not in api.text


def test_api_describes_the_sandbox_account_to_admins_without_the_token(
    api: httpx.Client,
) -> None:
    settings = get_settings()
    view = api.get("/api/settings/twilio")
    assert view.status_code == 200
    assert view.json()["sandbox"] == {
        "account_sid": settings.account_sid,
        "auth_token": {"masked": "••••" + AUTH_TOKEN[-4:], "source": "env"},
        "credentials_file": str(settings.data_dir / ".sandbox_credentials"),
    }
    assert AUTH_TOKEN not in view.text


def test_revealed_token_fits_a_phone_screen_in_polish(
    new_page: NewPage, make_user: MakeUser
) -> None:
    page = new_page(locale="pl-PL")
    page.set_viewport_size({"width": 390, "height": 844})
    browser_sign_in(page, make_user("admin"))
    page.goto("/settings")
    section = page.locator("#sandbox-credentials")
    assert section.get_by_label("Account SID").input_value() == get_settings().account_sid
    section.get_by_role("button", name="Pokaż token").click()
    field = page.locator("#sandbox-auth-token")
    field.wait_for()
    assert field.input_value() == AUTH_TOKEN
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
