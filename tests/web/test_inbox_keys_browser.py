"""The inbox's keyboard in real headless Chromium: j/k, a, e, n, r, "/", "?"; and the notice
when typing into a conversation a colleague owns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.web.test_inbox_browser import NO_SIDEWAYS, operator, row, signed_in
from tests.web.test_inbox_pages import receive
from tests.web.test_inbox_tools_browser import shared_answer

NewPage = Callable[..., Any]
Post = Callable[..., httpx.Response]

FIRST, SECOND, THIRD = "+48600100871", "+48600100872", "+48600100873"


def current(page: Any) -> str:
    page.wait_for_selector("#inbox-pane[data-conversation] #thread")
    return str(page.get_attribute("#inbox-pane", "data-conversation"))


def test_keys_move_through_the_list_take_resolve_write_and_list_themselves(
    new_page: NewPage, twilio_post: Post
) -> None:
    for number, text in ((THIRD, "Trzecia"), (SECOND, "Druga"), (FIRST, "Pierwsza")):
        receive(twilio_post, number, text, profile="Jan")
    shared_answer("hours", "Hi {{contact.name}}, we open at 9.")
    user_id, email = operator("Ola")
    page = signed_in(new_page, email)
    page.goto("/inbox")
    page.evaluate("window.__sameDocument = true")
    order = page.eval_on_selector_all(".inbox-row", "rows => rows.map(r => r.dataset.participant)")
    assert order == [FIRST, SECOND, THIRD]

    page.keyboard.press("j")
    assert current(page) == FIRST
    page.keyboard.press("j")
    page.wait_for_selector(f"#inbox-pane[data-conversation='{SECOND}']")
    page.wait_for_selector(f"{row(SECOND)} .inbox-link[aria-current=true]")
    page.keyboard.press("k")
    page.wait_for_selector(f"#inbox-pane[data-conversation='{FIRST}']")

    page.keyboard.press("a")
    page.wait_for_selector(f"#inbox-state[data-assignee='{user_id}']")
    page.wait_for_selector(".thread-event:has-text('Ola took this conversation')")

    # n writes a note; while a field has the focus the letters are typed, not obeyed.
    page.keyboard.press("n")
    assert (
        page.is_visible("#note-form") and page.evaluate("document.activeElement.id") == "note-body"
    )
    page.keyboard.type("jak")
    assert page.input_value("#note-body") == "jak"
    assert page.get_attribute("#inbox-pane", "data-conversation") == FIRST
    page.keyboard.press("Escape")
    page.evaluate("document.activeElement.blur()")

    # "/" goes to the reply box and offers the canned answers.
    page.keyboard.press("/")
    page.wait_for_selector(".canned-popup [data-canned-id]:has-text('/hours')")
    assert page.is_visible(".chat-composer") and page.input_value("#chat-body") == "/"
    page.keyboard.press("Enter")
    assert page.input_value("#chat-body") == "Hi Jan, we open at 9."
    page.evaluate("document.activeElement.blur()")

    # "?" lists the keys; Esc closes the list.
    page.keyboard.press("?")
    page.wait_for_selector("#inbox-keys[open]")
    assert "Resolve it" in page.inner_text("#inbox-keys")
    assert page.evaluate(NO_SIDEWAYS)
    page.keyboard.press("Escape")
    page.wait_for_selector("#inbox-keys:not([open])", state="attached")

    # e resolves: the conversation leaves the list of open ones.
    page.keyboard.press("e")
    page.wait_for_selector("#inbox-state[data-status=resolved]")
    page.wait_for_selector(row(FIRST), state="detached")
    assert page.evaluate("window.__sameDocument") is True


def test_typing_into_a_colleagues_conversation_says_whose_it_is(
    new_page: NewPage, twilio_post: Post, api: httpx.Client
) -> None:
    receive(twilio_post, FIRST, "Dzień dobry")
    piotr_id, _ = operator("Piotr")
    assert (
        api.patch(f"/api/conversations/{FIRST}", json={"assignee_id": piotr_id}).status_code == 200
    )
    _, email = operator("Ola")
    page = signed_in(new_page, email)
    page.goto(f"/inbox?c={FIRST.replace('+', '%2B')}")
    page.wait_for_selector("#thread")
    assert not page.is_visible("[data-owner-notice]")
    page.locator("#chat-body").press_sequentially("Już sprawdzam")
    notice = page.wait_for_selector("[data-owner-notice]:not([hidden])")
    assert notice.inner_text().startswith("Piotr owns this conversation")

    # Taking it over: the notice goes at the next keystroke.
    page.click("[data-assign-me]")
    page.wait_for_selector("#inbox-state[data-assignee-name='Ola']")
    page.locator("#chat-body").press_sequentially("!")
    page.wait_for_selector("[data-owner-notice]", state="hidden")
