"""The chat's media in real headless Chromium: pictures and voice notes, attaching a
file in the composer, and a WhatsApp template when the 24-hour window is closed."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update

from relaydesk.core.db import session_scope
from relaydesk.media import service as media
from relaydesk.media import store
from relaydesk.media.models import Attachment
from relaydesk.messaging.models import Message
from tests.web.conftest import MakeUser, browser_sign_in
from tests.web.test_chat_media_pages import attach, close_window, customer_writes, png_pixel

NewPage = Callable[..., Any]
Post = Callable[..., httpx.Response]

CUSTOMER = "+48600100320"
# Set RELAYDESK_SCREENSHOTS=/some/dir to keep pictures of the chat for review.
SHOTS = os.environ.get("RELAYDESK_SCREENSHOTS")


def shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def open_chat(new_page: NewPage, make_user: MakeUser, participant: str = CUSTOMER) -> Any:
    page = new_page()
    browser_sign_in(page, make_user("operator"))
    page.wait_for_url("**/inbox")
    page.goto(f"/chat/{participant}")
    return page


def finish_download(attachment_id: int, data: bytes) -> None:
    """What the background job does when a pending file arrives."""
    with session_scope() as session:
        row = session.get(Attachment, attachment_id)
        assert row is not None
        row.sha256, row.size, row.state = store.put(data), len(data), "stored"
        session.flush()
        session.execute(
            update(Message).where(Message.id == row.message_id).values(media=[media.view(row)])
        )


IMAGE_LOADED = "s => { const i = document.querySelector(s); return i && i.naturalWidth > 0; }"


def loaded(page: Any, selector: str) -> None:
    """Wait until the browser has fetched and decoded the picture."""
    page.wait_for_function(IMAGE_LOADED, arg=selector)


def test_operator_sees_a_picture_and_a_voice_note_with_its_transcript(
    new_page: NewPage, make_user: MakeUser, twilio_post: Post
) -> None:
    sid = customer_writes(twilio_post, CUSTOMER, "Zobacz zdjęcie")
    image, audio = attach(
        sid,
        [
            {"content_type": "image/png", "state": "stored", "data": png_pixel(160, 120)},
            {
                "content_type": "audio/ogg",
                "state": "stored",
                "data": b"OggS\x00voice",
                "transcript": "Czy paczka już wyszła?",
            },
        ],
    )
    page = open_chat(new_page, make_user)
    thumb = f"[data-media-id='{image}'] img"
    loaded(page, thumb)
    player = page.locator(f"[data-media-id='{audio}'] audio")
    assert player.get_attribute("controls") is not None
    assert player.get_attribute("preload") == "none"
    transcript = page.locator(f"[data-media-id='{audio}'] .transcript")
    assert transcript.locator(".transcript-label").text_content() == "Transcript"
    assert "Czy paczka już wyszła?" in transcript.inner_text()
    shot(page, "chat-media")

    # The thumbnail opens the full picture in a modal viewer; Esc closes it again.
    page.focus(f"[data-media-id='{image}'] .media-thumb")
    page.keyboard.press("Enter")
    page.wait_for_selector("#media-viewer[open]")
    loaded(page, "#media-viewer img")
    assert page.evaluate("document.activeElement.matches('[data-close-viewer]')")
    shot(page, "chat-image-viewer")
    page.keyboard.press("Escape")
    page.wait_for_selector("#media-viewer:not([open])", state="attached")
    page.click(f"[data-media-id='{image}'] .media-thumb")
    page.wait_for_selector("#media-viewer[open]")
    page.click("[data-close-viewer]")
    page.wait_for_selector("#media-viewer:not([open])", state="attached")


def test_a_file_still_downloading_appears_when_it_arrives(
    new_page: NewPage, make_user: MakeUser, twilio_post: Post
) -> None:
    sid = customer_writes(twilio_post, CUSTOMER)
    (pending,) = attach(sid, [{"content_type": "image/png", "state": "pending"}])
    page = open_chat(new_page, make_user)
    item = page.locator(f"[data-media-id='{pending}']")
    assert "Downloading…" in item.inner_text()
    page.evaluate("window.__sameDocument = true")
    finish_download(pending, png_pixel())
    page.wait_for_selector(f"[data-media-id='{pending}'][data-media-state=stored] img")
    loaded(page, f"[data-media-id='{pending}'] img")
    assert page.evaluate("window.__sameDocument") is True


def test_operator_attaches_a_picture_and_sends_it_without_text(
    new_page: NewPage, make_user: MakeUser, twilio_post: Post
) -> None:
    customer_writes(twilio_post, CUSTOMER, "Proszę o zdjęcie paczki")
    page = open_chat(new_page, make_user)
    page.set_input_files(
        "#chat-file", files=[{"name": "paczka.png", "mimeType": "image/png", "buffer": png_pixel()}]
    )
    page.wait_for_selector(".attach-item[aria-busy=false]")
    assert "paczka.png" in page.inner_text(".attach-item")
    assert page.locator(".attach-item input[name=media_urls]").input_value().startswith("http")
    shot(page, "chat-attached")
    page.click(".chat-composer button[type=submit]")
    page.wait_for_selector("#notices .notice-success")
    page.wait_for_selector(".bubble.out .media-thumb img")
    loaded(page, ".bubble.out .media-thumb img")
    assert page.locator(".attach-item").count() == 0  # ready for the next message

    # A file of a kind nobody accepts is refused at once, with the reason.
    page.set_input_files(
        "#chat-file",
        files=[{"name": "setup.exe", "mimeType": "application/x-msdownload", "buffer": b"MZ\0"}],
    )
    notice = page.wait_for_selector("#notices .notice-error")
    assert "setup.exe" in notice.inner_text()
    assert "not accepted" in notice.inner_text()
    assert page.locator(".attach-item").count() == 0


def test_closed_whatsapp_window_offers_a_template_instead_of_free_text(
    new_page: NewPage, make_user: MakeUser, twilio_post: Post
) -> None:
    customer_writes(twilio_post, sender=f"whatsapp:{CUSTOMER}", body="Dzień dobry")
    close_window(CUSTOMER)
    page = open_chat(new_page, make_user)
    window = page.locator("#wa-window")
    assert "The 24-hour window is closed" in window.inner_text()
    assert page.locator("#chat-body").is_disabled()
    assert page.locator("[data-window-note]").is_visible()
    assert page.locator("details[data-templates]").get_attribute("open") is not None

    page.wait_for_selector("#template-sid")
    page.select_option("#template-sid", label="order_shipped (en)")
    fields = page.locator("fieldset[data-template]:not([hidden])")
    variable = fields.locator("input[data-variable='1']")
    assert variable.input_value() == "12345"  # the template's own example
    variable.fill("PL-778")
    preview = fields.locator("[data-template-preview]")
    assert preview.inner_text() == "Good news! Your order PL-778 has shipped and is on its way."
    shot(page, "chat-template")
    page.click(".template-form button[type=submit]")
    page.wait_for_selector("#notices .notice-success")
    bubble = page.wait_for_selector(".bubble.out")
    assert "WhatsApp" in bubble.inner_text()

    # Switching the composer to SMS lifts the WhatsApp rule for free text.
    page.select_option("#chat-channel", "sms")
    assert page.locator("#chat-body").is_enabled()
    assert page.locator("[data-window-note]").is_hidden()


def test_a_refused_upload_is_explained_in_the_panels_language(
    new_page: NewPage, make_user: MakeUser, twilio_post: Post
) -> None:
    customer_writes(twilio_post, CUSTOMER, "Dzień dobry")
    page = new_page(locale="pl-PL")
    browser_sign_in(page, make_user("operator"))
    page.wait_for_url("**/inbox")
    page.goto(f"/chat/{CUSTOMER}")
    page.set_input_files(
        "#chat-file",
        files=[{"name": "setup.exe", "mimeType": "application/x-msdownload", "buffer": b"MZ\0"}],
    )
    notice = page.wait_for_selector("#notices .notice-error")
    assert "setup.exe" in notice.inner_text()
    assert "nie są przyjmowane" in notice.inner_text()  # the API said it in English
