"""The customer's profile beside the inbox's thread in real headless Chromium: operators edit
it, viewers read it, it fits a desktop and a phone; admins define the attributes."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from relaydesk.auth.service import system_principal
from relaydesk.contacts.models import ContactAttribute, ContactProfile
from relaydesk.core.db import session_scope
from relaydesk.inbox import attributes, labels
from tests.conftest import customer_writes
from tests.web.conftest import PASSWORD, browser_sign_in, csrf_of
from tests.web.test_accessibility import LOW_CONTRAST, UNLABELLED

NewPage = Callable[..., Any]
Post = Callable[..., httpx.Response]

CUSTOMER, OTHER = "+48600100951", "+48600100952"
OUR_NUMBER = "+15005550006"
OPEN = f"/inbox?c={CUSTOMER.replace('+', '%2B')}"
NO_SIDEWAYS = "document.documentElement.scrollWidth <= window.innerWidth"
SHOTS = (
    Path(os.environ["RELAYDESK_SCREENSHOTS"]) if os.environ.get("RELAYDESK_SCREENSHOTS") else None
)
DEFINITIONS = [
    attributes.Definition("city", "City", "text"),
    attributes.Definition("visits", "Visits", "number"),
    attributes.Definition("since", "Customer since", "date"),
    attributes.Definition("plan", "Plan", "list", ["Gold", "Silver"]),
]


def person(role: str, name: str) -> str:
    """A named panel user; their email (password PASSWORD)."""
    from relaydesk.auth import service as auth

    email = f"{name.lower()}-{secrets.token_hex(3)}@example.com"
    with session_scope() as session:
        user = auth.create_user(session, email, PASSWORD, role, "test")
        user.name = name
    return email


def signed_in(new_page: NewPage, email: str, width: int = 1280, height: int = 900) -> Any:
    page = new_page()
    page.set_viewport_size({"width": width, "height": height})
    browser_sign_in(page, email)
    page.wait_for_url("**/inbox")
    return page


def setup(post: Post) -> None:
    """The customer wrote by SMS and, as Zofia, by WhatsApp; VIP on them; four attributes."""
    customer_writes(post, CUSTOMER, "Gdzie jest moja paczka? " * 8, to=OUR_NUMBER)
    answer = post(
        "/twilio/inbound",
        {
            "MessageSid": "SM" + secrets.token_hex(16),
            "From": f"whatsapp:{CUSTOMER}",
            "To": f"whatsapp:{OUR_NUMBER}",
            "Body": "Halo?",
            "NumMedia": "0",
            "ProfileName": "Zofia",
        },
    )
    assert answer.status_code == 200, answer.text
    customer_writes(post, OTHER, to=OUR_NUMBER)
    with session_scope() as session:
        labels.create_label(session, "VIP", "#d62728", "test")
        attributes.replace(session, DEFINITIONS, "test")
    with session_scope() as session:
        labels.set_labels(session, CUSTOMER, ["VIP"], system_principal("test"))


def low_contrast(page: Any) -> list[str]:
    """Text below WCAG's contrast; label chips aside, whose color-mix() background the
    check cannot read (it parses rgb() only)."""
    return [found for found in page.evaluate(LOW_CONTRAST) if ".label-chip:" not in found]


def box(page: Any, selector: str) -> dict[str, float]:
    found = page.locator(selector).bounding_box()
    assert found, selector
    return dict(found)


def test_an_operator_edits_the_profile_in_a_column_beside_the_thread(
    new_page: NewPage, twilio_post: Post, db: Any
) -> None:
    setup(twilio_post)
    page = signed_in(new_page, person("operator", "Ola"))
    page.goto(OPEN)
    page.wait_for_selector("#thread")
    # Wide: the profile is an open column to the right of the thread.
    page.wait_for_selector("details[data-profile-box][open] [data-profile-name]")
    main, side = box(page, ".pane-main"), box(page, ".pane-profile")
    assert main["x"] + main["width"] <= side["x"]
    assert page.evaluate(NO_SIDEWAYS)
    assert page.inner_text("[data-profile-name]") == "Zofia"
    chip = page.locator("[data-profile-labels] .label-chip[data-label='VIP']")
    assert chip.is_visible() and "#d62728" in (chip.get_attribute("style") or "")
    channels = page.inner_text("[data-profile-channels]")
    assert "SMS" in channels and f"whatsapp:{CUSTOMER}" in channels
    if SHOTS:
        page.screenshot(path=str(SHOTS / "profile-1280.png"), full_page=True)

    page.click("[data-profile-edit]")
    page.wait_for_selector("form[data-profile-form]")
    assert page.get_attribute("#profile-name", "placeholder") == "Zofia"
    assert page.get_attribute("#profile-attr-visits", "type") == "number"
    assert page.get_attribute("#profile-attr-since", "type") == "date"
    page.fill("#profile-name", "Zofia Nowak")
    page.fill("#profile-attr-city", "Kraków")
    page.fill("#profile-attr-visits", "3.5")
    page.fill("#profile-attr-since", "2024-05-01")
    page.select_option("#profile-attr-plan", "Gold")
    page.fill("#profile-note", "Dzwonić po 17:00.\nWoli WhatsApp.")
    assert page.evaluate(NO_SIDEWAYS)
    assert page.evaluate(UNLABELLED) == []
    page.click("form[data-profile-form] button[type=submit]")

    page.wait_for_selector("#inbox-profile .profile-saved")
    assert page.inner_text("[data-profile-name]") == "Zofia Nowak"
    assert low_contrast(page) == []
    assert page.inner_text("[data-attribute=city]") == "Kraków"
    assert page.inner_text("[data-attribute=visits]") == "3.5"
    assert page.inner_text("[data-attribute=since]") == "2024-05-01"
    assert page.inner_text("[data-attribute=plan]") == "Gold"
    assert page.inner_text("[data-profile-note]") == "Dzwonić po 17:00.\nWoli WhatsApp."
    # The pane's title and the list row take the new name.
    page.wait_for_selector("#pane-title:has-text('Zofia Nowak')")
    page.wait_for_selector(
        f".inbox-row[data-participant='{CUSTOMER}'] .inbox-who:has-text('Zofia Nowak')"
    )
    row = db.scalar(select(ContactProfile).where(ContactProfile.participant == CUSTOMER))
    assert (row.name, row.updated_by) == ("Zofia Nowak", "Ola")
    assert row.attributes == {
        "city": "Kraków",
        "visits": 3.5,
        "since": "2024-05-01",
        "plan": "Gold",
    }

    # Emptying the name gives back the customer's own; a refusal is a notice, the form stays.
    page.click("[data-profile-edit]")
    page.fill("#profile-name", "")
    page.evaluate("document.getElementById('profile-attr-city').value = 'tab\\there'")
    page.click("form[data-profile-form] button[type=submit]")
    page.wait_for_selector("#notices .notice-error:has-text('one line of text')")
    assert page.is_visible("form[data-profile-form]")
    page.fill("#profile-attr-city", "Gdańsk")
    page.click("form[data-profile-form] button[type=submit]")
    page.wait_for_selector("#inbox-profile .profile-saved")
    assert page.inner_text("[data-profile-name]") == "Zofia"
    assert page.inner_text("[data-attribute=city]") == "Gdańsk"


def test_a_viewer_reads_the_profile_and_cannot_edit_it(
    new_page: NewPage, twilio_post: Post, panel: Callable[[str], httpx.Client]
) -> None:
    setup(twilio_post)
    page = signed_in(new_page, person("viewer", "Wiktor"))
    page.goto(OPEN)
    page.wait_for_selector("[data-profile-name]")
    assert page.locator("[data-profile-edit]").count() == 0
    assert page.inner_text("[data-attribute=city]") == "—"

    viewer = panel("viewer")
    headers = {"X-CSRF-Token": csrf_of(viewer), "HX-Request": "true"}
    path = f"/inbox/{CUSTOMER}/profile"
    assert viewer.get(path).status_code == 200
    assert viewer.get(f"{path}/edit", headers=headers).status_code == 403
    assert viewer.post(path, data={"note": "x"}, headers=headers).status_code == 403
    assert viewer.get("/inbox/attributes").status_code == 403


def test_on_a_phone_the_profile_is_folded_above_the_thread(
    new_page: NewPage, twilio_post: Post
) -> None:
    setup(twilio_post)
    page = signed_in(new_page, person("operator", "Ola"), 390, 844)
    page.goto(OPEN)
    page.wait_for_selector("#thread")
    assert page.evaluate(NO_SIDEWAYS)
    assert not page.is_visible("[data-profile-name]")
    summary, thread = box(page, ".profile-box > summary"), box(page, "#thread")
    assert summary["y"] < thread["y"]
    page.click(".profile-box > summary")
    page.wait_for_selector("[data-profile-name]", state="visible")
    assert page.evaluate(NO_SIDEWAYS)
    page.click("[data-profile-edit]")
    page.wait_for_selector("form[data-profile-form]")
    assert page.evaluate(NO_SIDEWAYS)
    if SHOTS:
        page.screenshot(path=str(SHOTS / "profile-390.png"), full_page=True)
    # A live reload keeps it open (what is inside is replaced, not the fold).
    page.click("form[data-profile-form] button[type=button]")  # Cancel
    page.wait_for_selector("[data-profile-name]", state="visible")
    customer_writes(twilio_post, CUSTOMER, "Jeszcze jedno", to=OUR_NUMBER)
    page.wait_for_selector("#thread :text('Jeszcze jedno')")
    assert page.is_visible("[data-profile-name]")


def test_admins_define_the_attributes_on_their_page(
    new_page: NewPage, twilio_post: Post, db: Any, panel: Callable[[str], httpx.Client]
) -> None:
    customer_writes(twilio_post, CUSTOMER, to=OUR_NUMBER)
    page = signed_in(new_page, person("admin", "Adam"))
    page.goto("/inbox")
    page.click("[data-manage-attributes]")
    page.wait_for_url("**/inbox/attributes")
    assert page.evaluate(NO_SIDEWAYS)

    def add(key: str, name: str, kind: str, options: str = "") -> None:
        page.fill("#attribute-new-key", key)
        page.fill("#attribute-new-name", name)
        page.select_option("#attribute-new-kind", kind)
        page.fill("#attribute-new-options", options)
        page.click(".attribute-new button[type=submit]")
        page.wait_for_selector(f"[data-attribute-row={key}]")

    add("city", "City", "text")
    add("plan", "Plan", "list", "Gold\nSilver\n\n")
    add("visits", "Visits", "number")
    assert db.scalars(select(ContactAttribute.key).order_by(ContactAttribute.position)).all() == [
        "city",
        "plan",
        "visits",
    ]
    # A key taken already is refused with a notice.
    page.fill("#attribute-new-key", "city")
    page.fill("#attribute-new-name", "Town")
    page.click(".attribute-new button[type=submit]")
    page.wait_for_selector("#notices .notice-error:has-text('city is there twice')")

    page.click("[data-attribute-row=visits] button[aria-label^='Move'][aria-label$='up']")
    page.wait_for_selector("[data-attribute-row=visits] + [data-attribute-row=plan]")
    page.fill("[data-attribute-row=plan] input[name=name]", "Subscription")
    page.fill("[data-attribute-row=plan] textarea", "Gold\nPlatinum")
    page.click("[data-attribute-row=plan] button[type=submit]")
    page.wait_for_selector("[data-attribute-row=plan] input[value=Subscription]")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-attribute-row=city] button:has-text('Remove')")
    page.wait_for_selector("[data-attribute-row=city]", state="detached")
    rows = db.execute(
        select(ContactAttribute.key, ContactAttribute.name, ContactAttribute.options).order_by(
            ContactAttribute.position
        )
    ).all()
    assert [tuple(r) for r in rows] == [
        ("visits", "Visits", []),
        ("plan", "Subscription", ["Gold", "Platinum"]),
    ]
    assert page.evaluate(UNLABELLED) == [] and low_contrast(page) == []
    if SHOTS:
        page.screenshot(path=str(SHOTS / "attributes-1280.png"), full_page=True)

    operator = panel("operator")
    assert operator.get("/inbox/attributes").status_code == 403
    assert re.search(r"data-manage-attributes", operator.get("/inbox").text) is None
