"""Accessibility basics on every panel page: labels, keyboard, focus, contrast."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.web.conftest import MakeUser, browser_sign_in

NewPage = Callable[..., Any]

PAGES = [
    "/messages",
    "/chat/+48600100100",
    "/reminders",
    "/sandbox-phone",
    "/settings",
    "/users",
    "/audit",
]

UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
  .filter(el => {
    if (el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')) return false;
    if (el.tagName === 'BUTTON') return !el.textContent.trim();
    if (el.labels && el.labels.length) return false;
    return true;
  })
  .map(el => el.outerHTML.slice(0, 120))"""

# WCAG relative luminance and contrast of each text element against its first opaque
# background up the tree.
LOW_CONTRAST = """() => {
  const parse = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.9)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.offsetParent === null) continue;
    const style = getComputedStyle(el);
    const fg = parse(style.color).slice(0, 3);
    const [a, b] = [lum(fg), lum(background(el))].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.5 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5) && !el.closest('[disabled]')) {
      const text = el.textContent.trim().slice(0, 40);
      out.push(`${ratio.toFixed(2)} ${el.tagName}.${el.className}: ${text}`);
    }
  }
  return out;
}"""


@pytest.fixture
def signed_in_admin(
    new_page: NewPage, make_user: MakeUser, twilio_post: Callable[..., httpx.Response]
) -> Any:
    for body in ("Dzień dobry", "STOP"):
        twilio_post(
            "/twilio/inbound",
            {
                "MessageSid": "SM" + secrets.token_hex(16),
                "From": "+48600100100",
                "To": "+15005550006",
                "Body": body,
            },
        )
    page = new_page()
    browser_sign_in(page, make_user("admin"))
    page.wait_for_url("**/inbox")
    return page


def test_every_control_has_a_label(signed_in_admin: Any) -> None:
    page = signed_in_admin
    for path in PAGES:
        page.goto(path)
        assert page.evaluate(UNLABELLED) == [], path
    # The check itself notices a control without a label.
    page.evaluate("document.querySelector('main').append(document.createElement('input'))")
    assert len(page.evaluate(UNLABELLED)) == 1


def test_text_has_enough_contrast(signed_in_admin: Any) -> None:
    page = signed_in_admin
    for path in PAGES:
        page.goto(path)
        assert page.evaluate(LOW_CONTRAST) == [], path
    # The check itself notices pale grey text on white.
    page.evaluate(
        "const p = document.createElement('p'); p.textContent = 'faint';"
        "p.style.color = '#bbbbbb'; document.querySelector('main').append(p)"
    )
    assert page.evaluate(LOW_CONTRAST) == ["1.92 P.: faint"]


def test_keyboard_reaches_the_content_with_a_visible_focus(signed_in_admin: Any) -> None:
    page = signed_in_admin
    page.goto("/messages")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", "")
    page.keyboard.press("Enter")
    # Tab onwards through the send form: each control takes focus in order.
    page.focus("#send-to")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "send-body"
    page.keyboard.type("Hello")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "send-send-at"  # optional "send later"
    for _ in range(10):  # Chromium steps through the date and time parts of that field
        if page.evaluate("document.activeElement.tagName") == "BUTTON":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Send message"
