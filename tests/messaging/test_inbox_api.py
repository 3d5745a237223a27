"""Reading the inbox: pagination, filters, counts, conversations, deletion, stats."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import func, select

from relaydesk.core.models import AuditEntry
from relaydesk.messaging.models import Conversation, Message

Post = Callable[..., httpx.Response]


def receive(post: Post, sender: str, body: str) -> str:
    sid = "SM" + secrets.token_hex(16)
    answer = post(
        "/twilio/inbound",
        {"MessageSid": sid, "From": sender, "To": "+15005550006", "Body": body, "NumMedia": "0"},
    )
    assert answer.status_code == 200
    return sid


def test_pages_walk_the_whole_history_newest_first(twilio_post: Post, api: httpx.Client) -> None:
    for i in range(7):
        receive(twilio_post, f"+4860010040{i}", f"wiadomość {i}")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/api/messages", params=params).json()
        seen += [m["body"] for m in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [f"wiadomość {i}" for i in reversed(range(7))]
    assert page["counts"] == {"total": 7, "inbound": 7, "outbound": 0}


def test_filters_by_direction_status_participant_and_text(
    twilio_post: Post, api: httpx.Client
) -> None:
    receive(twilio_post, "+48600100410", "Kiedy dostawa?")
    receive(twilio_post, "+48600100411", "Dziękuję 100%")
    sent = api.post("/api/send-message", json={"to": "+48600100410", "body": "Jutro"})
    assert sent.status_code == 201
    out = api.get("/api/messages", params={"direction": "outbound"}).json()["items"]
    assert [m["body"] for m in out] == ["Jutro"]
    by_number = api.get("/api/messages", params={"participant": "600 100 410"}).json()["items"]
    assert {m["body"] for m in by_number} == {"Kiedy dostawa?", "Jutro"}
    by_text = api.get("/api/messages", params={"q": "dostawa"}).json()["items"]
    assert [m["body"] for m in by_text] == ["Kiedy dostawa?"]
    # LIKE wildcards in the search text are taken literally.
    assert [m["body"] for m in api.get("/api/messages", params={"q": "0%"}).json()["items"]] == [
        "Dziękuję 100%"
    ]
    assert api.get("/api/messages", params={"q": "_"}).json()["items"] == []
    received = api.get("/api/messages", params={"status": "received"}).json()["items"]
    assert len(received) == 2
    bad = api.get("/api/messages", params={"participant": "abc"})
    assert bad.status_code == 422
    assert api.get("/api/messages", params={"cursor": "!!!"}).status_code == 422
    assert api.get("/api/messages", params={"direction": "sideways"}).status_code == 422
    assert api.get("/api/messages", params={"limit": 0}).status_code == 422


def test_conversations_most_recent_first_with_unread(twilio_post: Post, api: httpx.Client) -> None:
    receive(twilio_post, "+48600100420", "pierwsza")
    receive(twilio_post, "+48600100421", "druga")
    receive(twilio_post, "+48600100420", "trzecia")
    items = api.get("/api/conversations").json()["items"]
    assert [c["participant"] for c in items] == ["+48600100420", "+48600100421"]
    first = items[0]
    assert first["last_body"] == "trzecia"
    assert first["message_count"] == 2
    assert first["unread"] == 2
    assert first["opted_out"] is False
    assert api.post("/api/conversations/+48600100420/read").status_code == 204
    assert api.get("/api/conversations").json()["items"][0]["unread"] == 0
    page = api.get("/api/conversations", params={"limit": 1}).json()
    assert len(page["items"]) == 1
    rest = api.get("/api/conversations", params={"limit": 1, "cursor": page["next"]}).json()
    assert rest["items"][0]["participant"] == "+48600100421"
    assert rest["next"] is None


def test_one_conversation_oldest_first(twilio_post: Post, api: httpx.Client) -> None:
    receive(twilio_post, "+48600100430", "Dzień dobry")
    api.post("/api/send-message", json={"to": "+48600100430", "body": "W czym mogę pomóc?"})
    receive(twilio_post, "+48600100430", "Chodzi o zamówienie")
    thread = api.get("/api/conversations/0048600100430").json()
    assert thread["participant"] == "+48600100430"
    assert [(m["direction"], m["body"]) for m in thread["items"]] == [
        ("inbound", "Dzień dobry"),
        ("outbound", "W czym mogę pomóc?"),
        ("inbound", "Chodzi o zamówienie"),
    ]
    older = api.get("/api/conversations/+48600100430", params={"limit": 2}).json()
    assert [m["body"] for m in older["items"]] == ["W czym mogę pomóc?", "Chodzi o zamówienie"]
    first = api.get(
        "/api/conversations/+48600100430", params={"limit": 2, "before": older["before"]}
    ).json()
    assert [m["body"] for m in first["items"]] == ["Dzień dobry"]


def test_delete_keeps_counts_true_and_is_audited(
    twilio_post: Post, api: httpx.Client, db: Any
) -> None:
    receive(twilio_post, "+48600100440", "a")
    receive(twilio_post, "+48600100440", "b")
    items = api.get("/api/messages").json()["items"]
    newest = items[0]
    assert api.delete(f"/api/messages/{newest['id']}").status_code == 204
    assert api.delete(f"/api/messages/{newest['id']}").status_code == 404
    assert api.get(f"/api/messages/{newest['id']}").status_code == 404
    counts = api.get("/api/messages").json()["counts"]
    assert counts == {"total": 1, "inbound": 1, "outbound": 0}
    assert counts["total"] == db.scalar(select(func.count(Message.id)))
    conv = db.scalar(select(Conversation).where(Conversation.participant == "+48600100440"))
    assert conv.message_count == 1
    assert conv.last_body == "a"
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "message.delete"))
    assert entry.target == f"message:{newest['id']}"
    assert entry.actor.startswith("token:")


def test_stats_count_per_direction_status_and_day(twilio_post: Post, api: httpx.Client) -> None:
    receive(twilio_post, "+48600100450", "a")
    api.post("/api/send-message", json={"to": "+48600100450", "body": "b"})
    stats = api.get("/stats").json()
    assert stats["counts"] == {"total": 2, "inbound": 1, "outbound": 1}
    assert stats["by_status"]["received"] == 1
    assert sum(stats["by_status"].values()) == 2
    assert len(stats["by_day"]) == 1
    assert stats["by_day"][0]["inbound"] == 1
    assert stats["by_day"][0]["outbound"] == 1
    assert api.get("/stats", params={"days": 0}).status_code == 422


def test_conversation_times_are_stored_like_message_times(
    twilio_post: Post, api: httpx.Client, db: Any
) -> None:
    """Keyset cursors compare stored times; every writer must store them the same way."""
    from sqlalchemy import text

    receive(twilio_post, "+48600100460", "a")
    api.post("/api/send-message", json={"to": "+48600100461", "body": "b"})
    mismatched = db.execute(
        text(
            "SELECT count(*) FROM conversations c JOIN messages m ON m.id = c.last_message_id "
            "WHERE c.last_message_at <> m.created_at"
        )
    ).scalar()
    assert mismatched == 0
    inbound_mismatch = db.execute(
        text(
            "SELECT count(*) FROM conversations c JOIN messages m ON m.id = c.last_message_id "
            "WHERE m.direction = 'inbound' AND c.last_inbound_at <> m.created_at"
        )
    ).scalar()
    assert inbound_mismatch == 0


def test_conversation_pages_never_repeat_or_skip(twilio_post: Post, api: httpx.Client) -> None:
    numbers = [f"+4860010047{i}" for i in range(7)]
    for number in numbers:
        receive(twilio_post, number, "x")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/api/conversations", params=params).json()
        seen += [c["participant"] for c in page["items"]]
        cursor = page["next"]
        if not cursor:
            break
    assert seen == list(reversed(numbers))
