"""The audit page shows admins the webhooks set aside, and retries or deletes dead letters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from relaydesk.core.models import AuditEntry
from relaydesk.messaging.models import Message
from tests.messaging.test_webhooks import inbound, new_sid
from tests.web.conftest import MakeUser, browser_sign_in, csrf_of
from tests.web.test_accessibility import LOW_CONTRAST, UNLABELLED

NewPage = Callable[..., Any]
Panel = Callable[[str], httpx.Client]

pytestmark = pytest.mark.usefixtures("empty_spool")


def dead_letter(params: dict[str, str], error: str = "DataError: integer out of range") -> str:
    """A dead letter as an older version left it (its cause since fixed); returns its id."""
    from relaydesk.core.db import utcnow
    from relaydesk.messaging import spoolfile

    entry = spoolfile.new_entry("inbound", params, None, utcnow())
    entry.error, entry.failed_at, entry.tries = error, utcnow(), 1
    spoolfile.append_dead(entry)
    return entry.id


def test_only_admins_see_and_retry_dead_letters(panel: Panel, db: Any) -> None:
    sid = new_sid()
    entry_id = dead_letter(inbound(sid, "tajne"))
    operator = panel("operator")
    page = operator.get("/audit")
    assert page.status_code == 403
    assert sid not in page.text
    token = csrf_of(operator)
    refused = operator.post("/audit/spool/retry", data={"id": entry_id, "csrf_token": token})
    assert refused.status_code == 403
    assert db.scalar(select(Message.id).where(Message.sid == sid)) is None

    admin = panel("admin")
    page = admin.get("/audit")
    assert page.status_code == 200
    assert sid in page.text and entry_id in page.text
    assert 'data-spool="dead">1<' in page.text
    # Without the session's CSRF token nothing happens.
    assert admin.post("/audit/spool/retry", data={"id": entry_id}).status_code == 403
    token = csrf_of(admin)
    wrong = admin.post("/audit/spool/drop", data={"id": "../../x\r\n", "csrf_token": token})
    assert wrong.status_code == 422
    missing = admin.post("/audit/spool/drop", data={"id": "f" * 12, "csrf_token": token})
    assert missing.status_code == 404
    assert db.scalar(select(Message.id).where(Message.sid == sid)) is None
    assert entry_id in admin.get("/audit").text


def test_admin_retries_and_deletes_dead_letters_in_the_browser(
    new_page: NewPage, make_user: MakeUser, db: Any
) -> None:
    fixed, poisoned = new_sid(), new_sid()
    dead_letter(inbound(fixed, "po aktualizacji"))
    dead_letter({"MessageSid": poisoned, "Body": "bez nadawcy"}, "BadWebhook: no From")
    page = new_page()
    browser_sign_in(page, make_user("admin"))
    page.wait_for_url("**/inbox")
    page.click("nav.tabs >> text=Audit log")
    page.wait_for_selector("#spool-section")
    assert page.inner_text("[data-spool=dead]") == "2"
    page.click(f"tr:has-text('{fixed}') button:has-text('Retry')")
    page.wait_for_selector("#spool-section >> text=Stored: 1. Still failing: 0.")
    assert page.locator(f"tr:has-text('{fixed}')").count() == 0
    assert page.inner_text("[data-spool=dead]") == "1"
    assert db.scalar(select(Message.body).where(Message.sid == fixed)) == "po aktualizacji"

    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click(f"tr:has-text('{poisoned}') button:has-text('Delete')")
    assert page.locator(f"tr:has-text('{poisoned}')").count() == 1
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"tr:has-text('{poisoned}') button:has-text('Delete')")
    page.wait_for_selector("#spool-section >> text=The dead letter was deleted.")
    assert page.inner_text("[data-spool=dead]") == "0"
    actions = db.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions[-2:] == ["spool.retry", "spool.drop"]


def test_spool_section_speaks_polish_fits_a_phone_and_is_accessible(
    new_page: NewPage, make_user: MakeUser
) -> None:
    dead_letter(inbound(new_sid() + "x" * 30, "długa"), "DataError: " + "bardzo-długi-błąd" * 20)
    page = new_page("pl-PL")
    page.set_viewport_size({"width": 390, "height": 844})
    browser_sign_in(page, make_user("admin"))
    page.wait_for_url("**/inbox")
    page.goto("/audit")
    section = page.inner_text("#spool-section")
    assert "Odłożone webhooki" in section
    assert "Ponów" in section
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    assert page.evaluate(UNLABELLED) == []
    assert page.evaluate(LOW_CONTRAST) == []
