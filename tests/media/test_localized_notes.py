"""Notes kept in English on attachments and automatic answers, shown in Polish in the panel.

A refused file's reason and a failed answer's detail are stored as the API answers them
(English); the chat shows them in the reader's language, a quoted reason included.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from relaydesk.automation import pipeline
from relaydesk.automation.models import AutomationRun
from relaydesk.core.config import get_settings
from relaydesk.media.models import Attachment
from relaydesk.messaging.models import Message
from tests.conftest import wait_for
from tests.web.conftest import make_user, panel  # noqa: F401 (fixtures: a signed-in panel)

POLISH = {"Accept-Language": "pl-PL,pl;q=0.9"}


def polish_panel(panel: Callable[[str], httpx.Client]) -> httpx.Client:  # noqa: F811
    client = panel("viewer")
    client.headers.update(POLISH)
    return client


def phone_sends(api: httpx.Client, number: str, name: str, data: bytes, content_type: str) -> int:
    """The sandbox phone sends one file; returns the inbound message's id."""
    answer = api.post(
        "/sandbox/phone/messages",
        data={"from": number, "body": ""},
        files=[("media", (name, data, content_type))],
    )
    assert answer.status_code == 201, answer.text
    sid = str(answer.json()["sid"])
    return int(wait_for(lambda: _message_id(sid), what=f"message {sid}"))


def _message_id(sid: str) -> int | None:
    from relaydesk.core.db import session_scope

    with session_scope(write=False) as session:
        return session.scalar(select(Message.id).where(Message.sid == sid))


def settled(db: Any, message_id: int) -> Attachment:
    def check() -> Attachment | None:
        db.expire_all()
        row = db.scalar(select(Attachment).where(Attachment.message_id == message_id))
        return row if row is not None and row.state not in ("pending", "working") else None

    found: Attachment = wait_for(check, timeout=60, what="the attachment")
    return found


def test_a_refused_file_is_explained_in_polish_in_the_chat_and_english_by_the_api(
    api: httpx.Client,
    db: Any,
    panel: Callable[[str], httpx.Client],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    program = b"MZ\x90\x00" + b"\x00" * 200
    number = "+48600300771"
    odd = settled(db, phone_sends(api, number, "setup.exe", program, "application/x-msdownload"))
    assert odd.state == "refused"
    assert odd.error == "files of type application/x-msdownload are not accepted"
    shown = api.get("/api/messages", params={"participant": number}).json()["items"][0]
    assert shown["media"][0]["error"] == odd.error

    page = html.unescape(polish_panel(panel).get(f"/chat/{number}").text)
    assert "pliki typu application/x-msdownload nie są przyjmowane" in page
    assert "are not accepted" not in page

    # Over the size limit: the download's reason is quoted inside the message's limit.
    data = b"\x89PNG\r\n\x1a\n" + b"\x00" * 400
    monkeypatch.setattr(get_settings(), "media_max_bytes", 100)
    number = "+48600300772"
    big = settled(db, phone_sends(api, number, "big.png", data, "image/png"))
    assert big.state == "refused"
    assert big.error is not None and big.error.startswith("the file is ")
    assert big.error.endswith("-byte limit (at most 0 MB per message)")

    page = html.unescape(polish_panel(panel).get(f"/chat/{number}").text)
    assert "plik " in page and "limit 100 bajtów (najwyżej 0 MB na wiadomość)" in page
    assert "per message" not in page and "-byte limit" not in page


def test_a_failed_automatic_answer_is_explained_in_polish_in_the_bot_box(
    api: httpx.Client,
    db: Any,
    panel: Callable[[str], httpx.Client],  # noqa: F811
    twilio_post: Callable[..., httpx.Response],
) -> None:
    # The run waits for its debounce, so it is still pending when its workers "die".
    rules = api.put("/api/automation/rules", json={"debounce_seconds": 120})
    assert rules.status_code == 200, rules.text
    classic = api.put("/api/auto-reply", json={"enabled": True, "message": "Odpiszemy wkrótce."})
    assert classic.status_code == 200, classic.text
    sid = "SM" + "7" * 32
    number = "+48600300773"
    sent = twilio_post(
        "/twilio/inbound",
        {"MessageSid": sid, "From": number, "To": "+15005550006", "Body": "Halo?"},
    )
    assert sent.status_code == 200, sent.text

    def pending_run() -> Any:
        db.expire_all()
        return db.scalar(
            select(AutomationRun.id)
            .join(Message, Message.id == AutomationRun.inbound_message_id)
            .where(Message.sid == sid)
        )

    run_id = int(wait_for(pending_run, what="the automation run"))
    db.execute(
        update(AutomationRun)
        .where(AutomationRun.id == run_id)
        .values(attempts=pipeline.MAX_ATTEMPTS)
        .execution_options(synchronize_session=False)
    )
    db.commit()
    assert pipeline.run(run_id) == "failed"

    run = api.get("/api/automation/runs", params={"participant": number}).json()[0]
    assert run["detail"] == "gave up after 3 interrupted attempts"

    box = html.unescape(polish_panel(panel).get(f"/chat/{number}/bot").text)
    assert "data-bot-failure" in box
    assert "zrezygnowano po 3 przerwanych próbach" in box
    assert "interrupted attempts" not in box
