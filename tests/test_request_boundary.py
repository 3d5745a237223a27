"""A 2xx means committed: a write whose commit fails answers 503, and nothing changes.

The commit is made to fail at the database connection (SQLAlchemy's own `commit` event,
as a full disk or a lost connection would), only for the transaction that ran the
statement under test, so no other work of the server is disturbed.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from relaydesk.core.db import get_engine
from relaydesk.media.models import MediaLink
from relaydesk.messaging.models import Conversation, Message

Post = Callable[..., httpx.Response]


@contextmanager
def failing_commit(statement_start: str) -> Iterator[list[str]]:
    """Make the commit of any transaction that ran `statement_start…` fail; yields those."""
    engine = get_engine()
    doomed: list[str] = []

    def mark(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(statement_start):
            conn.info["doomed"] = True
            doomed.append(statement)

    def commit(conn: Any) -> None:
        if conn.info.pop("doomed", False):
            raise OperationalError("COMMIT", {}, Exception("disk I/O error (injected)"))

    def rollback(conn: Any) -> None:
        conn.info.pop("doomed", None)

    event.listen(engine, "before_cursor_execute", mark)
    event.listen(engine, "commit", commit)
    event.listen(engine, "rollback", rollback)
    try:
        yield doomed
    finally:
        event.remove(engine, "before_cursor_execute", mark)
        event.remove(engine, "commit", commit)
        event.remove(engine, "rollback", rollback)


def _inbound(post: Post, sender: str) -> str:
    sid = "SM" + secrets.token_hex(16)
    answer = post("/twilio/inbound", {"MessageSid": sid, "From": sender, "To": "+15005550006"})
    assert answer.status_code == 200
    return sid


def test_a_delete_whose_commit_fails_answers_500_and_keeps_the_message(
    twilio_post: Post, api: httpx.Client, db: Any
) -> None:
    sid = _inbound(twilio_post, "+48600100901")
    message_id = db.scalar(select(Message.id).where(Message.sid == sid))
    with failing_commit("DELETE FROM MESSAGES") as doomed:
        answer = api.delete(f"/api/messages/{message_id}")
    assert doomed, "the route never deleted anything"
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == "unavailable"
    assert db.get(Message, message_id) is not None
    # Once the database is well again the same call works.
    assert api.delete(f"/api/messages/{message_id}").status_code == 204
    assert db.get(Message, message_id) is None


def test_marking_read_whose_commit_fails_answers_500_and_stays_unread(
    twilio_post: Post, api: httpx.Client, db: Any
) -> None:
    _inbound(twilio_post, "+48600100902")
    unread = select(func.sum(Conversation.unread_count)).where(
        Conversation.participant == "+48600100902"
    )
    assert db.scalar(unread) == 1
    with failing_commit("UPDATE CONVERSATIONS") as doomed:
        answer = api.post("/api/conversations/+48600100902/read")
    assert doomed
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == "unavailable"
    assert db.scalar(unread) == 1


def test_an_upload_whose_commit_fails_gives_no_address(api: httpx.Client, db: Any) -> None:
    png = (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00"
        b"\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05"
        b"\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
    )
    with failing_commit("INSERT INTO MEDIA_LINKS") as doomed:
        answer = api.post("/api/media", files={"file": ("dot.png", png, "image/png")})
    assert doomed
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == "unavailable"
    assert "url" not in answer.text
    assert db.scalar(select(func.count()).select_from(MediaLink)) == 0
