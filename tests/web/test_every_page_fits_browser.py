"""Every page of the panel fits a 1280 px desktop and a 390 px phone: no sideways scrolling.

The pages are every navigation tab the installed domains declare (a new tab is covered
without editing this test) and the pages reached from them: an open conversation in the
inbox, the chat page, business hours, contact attributes, a campaign's page. Each page
is checked in English and in Polish (Polish words are longer). With RELAYDESK_SCREENSHOTS
set, each view is kept as a picture for a person to look at.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaydesk.core import domains
from tests.web.conftest import MakeUser, browser_sign_in
from tests.web.test_inbox_pages import receive

NewPage = Callable[..., Any]
Post = Callable[..., httpx.Response]

CUSTOMER = "+48600100891"
SHOTS = (
    Path(os.environ["RELAYDESK_SCREENSHOTS"]) if os.environ.get("RELAYDESK_SCREENSHOTS") else None
)
# How far a page is wider than the window, and the widest elements that make it so.
OVERFLOW = """() => {
  const width = window.innerWidth;
  const over = document.documentElement.scrollWidth - width;
  if (over <= 0) return null;
  const clipped = e => {
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement)
      if (getComputedStyle(a).overflowX !== "visible") return true;
    return false;
  };
  const beyond = e => e.getBoundingClientRect().right > width + 1 && e.getClientRects().length;
  const culprits = [...document.querySelectorAll("body *")]
    .filter(e => beyond(e) && !clipped(e) && ![...e.children].some(c => beyond(c) && !clipped(c)))
    .slice(0, 5)
    .map(e => [
      e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + "." + [...e.classList].join("."),
      Math.round(e.getBoundingClientRect().width) + "px",
      (e.textContent || "").trim().slice(0, 40),
    ].join(" "));
  return {over, culprits};
}"""


def pages() -> list[str]:
    """Every tab's page, then the pages behind them."""
    tabs = [tab.href for domain in domains.DOMAINS for tab in domain.tabs]
    return [
        *tabs,
        f"/inbox?c={CUSTOMER.replace('+', '%2B')}",
        f"/chat/{CUSTOMER.replace('+', '%2B')}",
        "/inbox/hours",
        "/inbox/attributes",
        "/search?q=zam%C3%B3wienia",
        "/search?q=zamowienie&type=messages",
        "/search?q=600&type=contacts",
        "/docs",
    ]


@pytest.mark.parametrize("locale", ["en-GB", "pl-PL"])
def test_every_page_fits_a_desktop_and_a_phone(
    new_page: NewPage, make_user: MakeUser, twilio_post: Post, api: httpx.Client, locale: str
) -> None:
    receive(twilio_post, CUSTOMER, "Dzień dobry, mam pytanie o zamówienie " * 6, profile="Jan")
    # Labels and attributes add filters and profile lines: the pages at their fullest.
    for name in ("Reklamacja długoterminowa", "VIP"):
        assert api.post("/api/labels", json={"name": name}).status_code == 201
    labelled = api.put(
        f"/api/conversations/{CUSTOMER}/labels",
        json={"labels": ["Reklamacja długoterminowa", "VIP"]},
    )
    assert labelled.status_code == 200
    defined = api.put(
        "/api/contact-attributes",
        json={"attributes": [{"key": "city", "name": "Miejscowość zamieszkania", "kind": "text"}]},
    )
    assert defined.status_code == 200
    profile = api.patch(
        f"/api/contacts/{CUSTOMER}",
        json={"attributes": {"city": "Konstantynów Łódzki"}, "note": "Długa notatka " * 30},
    )
    assert profile.status_code == 200
    email = make_user("admin")
    page = new_page(locale)
    browser_sign_in(page, email)
    page.wait_for_url("**/inbox")
    assert len(pages()) >= 18
    problems = {}
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        for path in pages():
            answer = page.goto(path)
            assert answer is not None and answer.status == 200, (path, answer and answer.status)
            page.wait_for_load_state("networkidle")
            found = page.evaluate(OVERFLOW)
            if found:
                problems[f"{path} at {width} px"] = found
            if SHOTS:
                name = path.strip("/").split("?")[0].replace("/", "-") or "home"
                page.screenshot(path=str(SHOTS / f"{name}-{width}-{locale[:2]}.png"))
    assert problems == {}
