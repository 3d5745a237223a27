"""Built-in tools (hand over to a person, schedule a message), "try it", and the test
box, which shows what a confirm tool or a hand-over would do without doing it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from relaydesk.auth.models import User
from relaydesk.inbox.models import ConversationNote, Mention
from relaydesk.messaging.models import Conversation, ConversationEvent, Message
from tests.automation.conftest import answers, finished
from tests.fakes.openai import FakeOpenAI
from tests.fakes.shop import API_KEY, ORDER_SCHEMA, Shop


def calls_once(name: str, arguments: dict[str, Any], then: str) -> Callable[[dict[str, Any]], Any]:
    """A model that calls `name` once, then answers `then` and the tool's result."""

    def reply(body: dict[str, Any]) -> Any:
        results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
        if results:
            return f"{then} {results[-1]}"
        return {"tool_calls": [{"name": name, "arguments": arguments}]}

    return reply


def test_hand_over_stops_the_bot_opens_the_conversation_and_tells_the_team(
    api: httpx.Client,
    db: Any,
    inbound: Callable[..., str],
    ai_on: Callable[..., Any],
    openai_fake: FakeOpenAI,
    make_user: Callable[..., str],
) -> None:
    ai_on()
    operator, admin = make_user("operator"), make_user("admin")
    make_user("viewer")
    made = api.post("/api/ai/tools", json={"builtin": "hand_over"})
    assert made.status_code == 201, made.text
    assert made.json()["name"] == "hand_over" and made.json()["url"] is None
    openai_fake.reply_with(
        calls_once("hand_over", {"reason": "Klient chce reklamować\nzamówienie"}, "Przekazuję.")
    )
    customer = "+48600500001"
    run = finished(db, inbound(customer, "Chcę rozmawiać z człowiekiem!"))
    assert run.outcome == "ai", run.detail
    [answer] = answers(db, customer)
    assert answer.body.startswith("Przekazuję.")  # the bot's last words still go out
    conversation = db.scalar(select(Conversation).where(Conversation.participant == customer))
    assert conversation.automation_enabled is False
    assert conversation.status == "open"
    [event] = db.scalars(
        select(ConversationEvent).where(
            ConversationEvent.participant == customer, ConversationEvent.kind == "handed_over"
        )
    )
    assert event.data["reason"] == "Klient chce reklamować zamówienie"
    [note] = db.scalars(select(ConversationNote).where(ConversationNote.participant == customer))
    told = set(
        db.scalars(
            select(User.email)
            .join(Mention, Mention.user_id == User.id)
            .where(Mention.note_id == note.id)
        )
    )
    assert told == {operator, admin}  # the conversation has no owner: the team; no viewer
    # The bot keeps quiet from now on.
    later = finished(db, inbound(customer, "Halo?"))
    assert later.outcome != "ai" and len(answers(db, customer)) == 1
    state = api.get(f"/api/conversations/{customer}/automation")
    assert state.status_code == 200 and state.json()["enabled"] is False


def test_schedule_message_stores_one_scheduled_message(
    api: httpx.Client,
    db: Any,
    inbound: Callable[..., str],
    ai_on: Callable[..., Any],
    openai_fake: FakeOpenAI,
) -> None:
    ai_on()
    assert api.post("/api/ai/tools", json={"builtin": "schedule_message"}).status_code == 201
    when = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    text = "Przypominamy o wizycie jutro o 10:00."
    openai_fake.reply_with(
        calls_once("schedule_message", {"text": text, "send_at": when.isoformat()}, "Ustawione.")
    )
    customer = "+48600500002"
    run = finished(db, inbound(customer, "Przypomnij mi proszę dzień wcześniej"))
    [call] = run.tool_calls
    assert (call["state"], call["status"], call["builtin"]) == ("called", 201, "schedule_message")
    [scheduled] = db.scalars(
        select(Message).where(Message.participant == customer, Message.status == "scheduled")
    )
    assert scheduled.body == text and scheduled.scheduled_at == when
    # The model asked to schedule a time in the past: refused, explained, nothing stored.
    openai_fake.reply_with(
        calls_once("schedule_message", {"text": "x", "send_at": "2020-01-01T10:00:00+01:00"}, "!")
    )
    past = finished(db, inbound(customer, "A jeszcze jedno"))
    assert past.tool_calls[0]["status"] == 422 and "future" in past.tool_calls[0]["excerpt"]
    assert len(list(db.scalars(select(Message).where(Message.status == "scheduled")))) == 1


def test_built_in_tools_are_checked_when_saved(api: httpx.Client) -> None:
    bad = [
        {"builtin": "hand_over", "url": "https://example.com/x"},
        {"builtin": "hand_over", "parameters": {"type": "object"}},
        {"builtin": "hand_over", "secret_header": {"name": "X-Key", "value": "v"}},
        {"builtin": "launch_rockets"},
        {"name": "no_url", "parameters": ORDER_SCHEMA},
        {"name": "no_parameters", "url": "https://example.com/x"},
    ]
    for payload in bad:
        response = api.post("/api/ai/tools", json=payload)
        assert response.status_code == 422, (payload, response.text)
    assert api.get("/api/ai/tools").json() == []
    made = api.post("/api/ai/tools", json={"builtin": "search_knowledge", "name": "faq"}).json()
    assert made["builtin"] == "search_knowledge" and made["parameters"]["required"] == ["query"]
    patched = api.patch(f"/api/ai/tools/{made['id']}", json={"url": "https://example.com/"})
    assert patched.status_code == 422
    renamed = api.patch(f"/api/ai/tools/{made['id']}", json={"description": "Nasze FAQ"})
    assert renamed.status_code == 200 and renamed.json()["description"] == "Nasze FAQ"


def test_try_it_calls_the_tool_with_example_arguments(
    api: httpx.Client, shop: Shop, make_token: Callable[[str], str], server: Any
) -> None:
    tool = {
        "name": "order_status",
        "url": f"{shop.base}/api/orders/{{order_id}}",
        "parameters": ORDER_SCHEMA,
        "secret_header": {"name": "X-Api-Key", "value": API_KEY},
    }
    made = api.post("/api/ai/tools", json=tool).json()
    tried = api.post(f"/api/ai/tools/{made['id']}/try", json={"arguments": {"order_id": "A-123"}})
    assert tried.status_code == 200, tried.text
    result = tried.json()
    assert result["status"] == 200 and "w drodze" in result["content"] and result["error"] is None
    assert shop.seen[-1][3]["x-api-key"] == API_KEY and API_KEY not in tried.text
    wrong = api.post(f"/api/ai/tools/{made['id']}/try", json={"arguments": {"order_id": 5}})
    assert wrong.status_code == 200 and wrong.json()["error"].startswith("bad arguments")
    assert api.post("/api/ai/tools/999999/try", json={"arguments": {}}).status_code == 404
    hand = api.post("/api/ai/tools", json={"builtin": "hand_over"}).json()
    assert api.post(f"/api/ai/tools/{hand['id']}/try", json={}).status_code == 422
    for role in ("operator", "viewer"):
        other = httpx.post(
            f"{server.url}/api/ai/tools/{made['id']}/try",
            json={"arguments": {"order_id": "A-123"}},
            headers={"Authorization": f"Bearer {make_token(role)}"},
        )
        assert other.status_code == 403
    assert httpx.post(f"{server.url}/api/ai/tools/{made['id']}/try", json={}).status_code == 401


def test_the_test_box_calls_reading_tools_and_only_describes_the_rest(
    api: httpx.Client,
    db: Any,
    ai_on: Callable[..., Any],
    openai_fake: FakeOpenAI,
    shop: Shop,
) -> None:
    ai_on()
    for tool in (
        {
            "name": "order_status",
            "url": f"{shop.base}/api/orders/{{order_id}}",
            "parameters": ORDER_SCHEMA,
            "secret_header": {"name": "X-Api-Key", "value": API_KEY},
        },
        {
            "name": "book_slot",
            "method": "POST",
            "url": f"{shop.base}/api/bookings",
            "parameters": {"type": "object", "properties": {"slot": {"type": "string"}}},
            "confirm": True,
        },
        {"builtin": "hand_over"},
    ):
        assert api.post("/api/ai/tools", json=tool).status_code == 201

    def everything(body: dict[str, Any]) -> Any:
        if any(m["role"] == "tool" for m in body["messages"]):
            return "Gotowe."
        return {
            "tool_calls": [
                {"name": "order_status", "arguments": {"order_id": "A-123"}},
                {"name": "book_slot", "arguments": {"slot": "wtorek"}},
                {"name": "hand_over", "arguments": {"reason": "test"}},
            ]
        }

    openai_fake.reply_with(everything)
    response = api.post("/api/ai/test", json={"participant": "+48600500003", "message": "Test"})
    assert response.status_code == 200, response.text
    calls = {c["name"]: c for c in response.json()["tool_calls"]}
    assert calls["order_status"]["state"] == "called" and calls["order_status"]["status"] == 200
    assert calls["book_slot"]["state"] == "dry_run" and calls["hand_over"]["state"] == "dry_run"
    assert [s[0] for s in shop.seen] == ["GET"]  # the booking was not made
    assert db.scalar(select(Conversation).where(Conversation.participant == "+48600500003")) is None


def test_a_hand_over_that_needs_a_yes_happens_after_it(
    api: httpx.Client,
    db: Any,
    inbound: Callable[..., str],
    ai_on: Callable[..., Any],
    openai_fake: FakeOpenAI,
) -> None:
    ai_on()
    made = api.post("/api/ai/tools", json={"builtin": "hand_over", "confirm": True})
    assert made.status_code == 201, made.text

    def offer_a_person(body: dict[str, Any]) -> Any:
        results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
        said = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        if results:
            return f"OK. {results[-1]}"
        if "człowiek" in said:
            return {"tool_calls": [{"name": "hand_over", "arguments": {"reason": "prośba"}}]}
        return "Czym mogę służyć?"

    openai_fake.reply_with(offer_a_person)
    customer = "+48600500004"
    asked = finished(db, inbound(customer, "Wolę rozmawiać z człowiekiem"))
    assert [c["state"] for c in asked.tool_calls] == ["awaiting_confirmation"]
    conversation = db.scalar(select(Conversation).where(Conversation.participant == customer))
    assert conversation.automation_enabled is True  # nothing happened yet
    agreed = finished(db, inbound(customer, "Tak"))
    assert [c["state"] for c in agreed.tool_calls] == ["confirmed"]
    again = db.scalar(select(Conversation).where(Conversation.participant == customer))
    assert again.automation_enabled is False
    assert len(answers(db, customer)) == 2  # the question, then the bot's last words
