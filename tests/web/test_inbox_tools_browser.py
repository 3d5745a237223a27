"""The inbox's team tools in real headless Chromium: two operators hand a conversation over
with a note and a mention, the other answers with a canned answer and resolves it; and the
layout with the tools open at a desktop and a phone width."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from relaydesk.auth.service import system_principal
from relaydesk.core.db import session_scope
from relaydesk.inbox import canned, labels
from tests.web.test_inbox_browser import NO_SIDEWAYS, SHOTS, operator, row, signed_in
from tests.web.test_inbox_pages import receive

NewPage = Callable[..., Any]
Post = Callable[..., httpx.Response]

CUSTOMER = "+48600100861"
OPEN = "/inbox?c=%2B48600100861"


def shared_answer(shortcut: str, body: str) -> None:
    with session_scope() as session:
        canned.create(session, system_principal("test"), shortcut, body, shared=True)


def test_handover_with_a_note_and_mention_then_a_canned_answer_and_resolve(
    new_page: NewPage, twilio_post: Post
) -> None:
    from playwright.sync_api import expect

    receive(twilio_post, CUSTOMER, "Kiedy jesteście otwarci?", profile="Jan")
    shared_answer("hours", "Hi {{contact.name}}, we open at 9. {{agent.name}}")
    _, anna_email = operator("Anna")
    bartek_id, bartek_email = operator("Bartek")

    bartek = signed_in(new_page, bartek_email)
    bartek.goto("/inbox?owner=mine")
    bartek.evaluate("window.__sameDocument = true")
    bartek.wait_for_selector(".mention-badge[data-mentions='0']")
    assert bartek.locator(row(CUSTOMER)).count() == 0

    anna = signed_in(new_page, anna_email)
    anna.goto("/inbox")
    anna.click(f"{row(CUSTOMER)} .inbox-link")
    anna.wait_for_selector(f"#inbox-pane[data-conversation='{CUSTOMER}'] #thread")
    anna.select_option("#state-owner", str(bartek_id))
    anna.wait_for_selector(f"#inbox-state[data-assignee='{bartek_id}']")
    # Note mode: the composer gives way to the note form; the note is a yellow card.
    anna.click("[data-compose-mode=note]")
    assert anna.is_visible("#note-form") and not anna.is_visible(".chat-composer")
    anna.fill("#note-body", "@Bartek please take this one, they ask about hours")
    anna.click("#note-form button[type=submit]")
    # A locator, not the element found first: the thread may be drawn again meanwhile
    # (the live update of the note just sent), which leaves a handle on a detached node.
    note = anna.locator(".thread-note:has-text('Private note · Anna')")
    expect(note).to_have_css("background-color", "rgb(255, 248, 214)")
    assert anna.input_value("#note-body") == ""

    # Bartek's page, never reloaded: the conversation arrives under Mine, and the badge.
    bartek.wait_for_selector(f"{row(CUSTOMER)}")
    bartek.wait_for_selector(".mention-badge[data-mentions='1']")
    assert bartek.evaluate("window.__sameDocument") is True
    bartek.click(".mention-badge")
    bartek.wait_for_selector(".mention.unread:has-text('Anna')")
    assert "please take this one" in bartek.inner_text("#mention-list")
    bartek.click(".mention.unread .mention-open")
    bartek.wait_for_selector(f"#inbox-pane[data-conversation='{CUSTOMER}'] #thread")
    bartek.wait_for_selector(".mention-badge[data-mentions='0']")
    assert bartek.is_visible(".thread-note:has-text('@Bartek please take this one')")

    # "/ho" offers the canned answer, filled in; Enter puts it in, the counter follows.
    body = bartek.locator("#chat-body")
    body.click()
    body.press_sequentially("/ho")
    bartek.wait_for_selector(
        ".canned-popup [data-canned-id][aria-selected=true]:has-text('/hours')"
    )
    body.press("Enter")
    bartek.wait_for_selector(".canned-popup", state="detached")
    sent = "Hi Jan, we open at 9. Bartek"
    assert body.input_value() == sent
    assert bartek.inner_text("#chat-counter .counter-text").startswith(f"{len(sent)} ")
    # Esc closes the list and leaves the text as typed.
    body.press_sequentially(" /h")
    bartek.wait_for_selector(".canned-popup [data-canned-id]")
    body.press("Escape")
    bartek.wait_for_selector(".canned-popup", state="detached")
    body.fill(sent)
    bartek.click(".chat-composer button[type=submit]")
    bartek.wait_for_selector(f"#thread .bubble.out:has-text('{sent}')")

    bartek.select_option("#state-status", "resolved")
    bartek.wait_for_selector("#inbox-state[data-status=resolved]")
    bartek.wait_for_selector(".thread-event:has-text('Bartek resolved it')")
    # Anna's page follows live too.
    anna.wait_for_selector(".thread-event:has-text('Bartek resolved it')")

    # The customer writes again from the sandbox phone: open again, still Bartek's.
    anna.goto(f"/sandbox-phone?number={CUSTOMER.replace('+', '%2B')}")
    anna.fill("#phone-body", "Jeszcze jedno pytanie")
    anna.click(".phone-form button[type=submit]")
    bartek.wait_for_selector("#inbox-state[data-status=open]")
    assert bartek.get_attribute("#inbox-state", "data-assignee") == str(bartek_id)
    bartek.wait_for_selector("#thread :text('Jeszcze jedno pytanie')")
    bartek.wait_for_selector('.thread-event:has-text("Reopened by the customer\'s message")')
    bartek.goto("/inbox?owner=mine")
    bartek.wait_for_selector(f"{row(CUSTOMER)}[data-status=open]")


def test_the_tools_fit_a_desktop_and_a_phone(new_page: NewPage, twilio_post: Post) -> None:
    receive(twilio_post, CUSTOMER, "Długa wiadomość " * 30, profile="Jan")
    shared_answer("hours", "We open at 9 " * 20)
    with session_scope() as session:
        for name in ("VIP", "Invoice", "A rather long label name for testing"):
            labels.create_label(session, name, None, "test")
    _, email = operator("Anna")
    for width, height in ((1280, 900), (390, 844)):
        page = signed_in(new_page, email, width, height)
        page.goto(OPEN)
        page.wait_for_selector("#thread")
        page.click("[data-label-picker] summary")
        page.check("input[name=label][value=VIP]")
        page.check("input[name='label'][value='A rather long label name for testing']")
        page.click("[data-label-picker] button[type=submit]")
        page.wait_for_selector("#inbox-state .label-chip:has-text('VIP')")
        assert page.evaluate(NO_SIDEWAYS), width
        page.locator("#chat-body").press_sequentially("/")
        page.wait_for_selector(".canned-popup [data-canned-id]")
        assert page.evaluate(NO_SIDEWAYS), width
        page.keyboard.press("Escape")
        page.click("[data-compose-mode=note]")
        page.fill("#note-body", "Bardzo długa notatka " * 30)
        page.click("#note-form button[type=submit]")
        page.wait_for_selector(".thread-note")
        assert page.evaluate(NO_SIDEWAYS), width
        if SHOTS:
            page.screenshot(path=str(SHOTS / f"inbox-tools-{width}.png"), full_page=True)
        page.goto("/inbox")
        page.wait_for_selector(f"{row(CUSTOMER)} .label-chip")
        page.click(".inbox-tools summary")
        page.wait_for_selector("#canned-manage")
        page.click(".mention-badge")
        page.wait_for_selector("[data-mention-list]")
        assert page.evaluate(NO_SIDEWAYS), width
