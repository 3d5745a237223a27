"""A tool that changes something is called only after the customer said yes.

End to end on the live server: signed webhooks, the AI with a booking tool (`confirm`)
defined through the API, the fake model, the shop on loopback counting bookings by
their idempotency key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from relaydesk.automation import confirming
from relaydesk.automation.models import ToolConfirmation
from relaydesk.core.db import session_scope, utcnow
from tests.automation.conftest import answers, finished
from tests.fakes.openai import FakeOpenAI
from tests.fakes.shop import Shop

BOOK_SCHEMA = {
    "type": "object",
    "properties": {"slot": {"type": "string", "description": "day and hour"}},
    "required": ["slot"],
}


def booking_assistant(body: dict[str, Any]) -> Any:
    """Books when asked to, answers from a tool's result when there is one."""
    results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    if results:
        return f"Wynik: {results[-1]}"
    said = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    if "zarezerwuj" in said.lower():
        return {"tool_calls": [{"name": "book_slot", "arguments": {"slot": "wtorek 10:00"}}]}
    return "Czy mogę w czymś jeszcze pomóc?"


@pytest.fixture
def booking(
    api: Any, ai_on: Callable[..., Any], openai_fake: FakeOpenAI, shop: Shop
) -> dict[str, Any]:
    ai_on()
    tool = {
        "name": "book_slot",
        "description": "Book a visit",
        "method": "POST",
        "url": f"{shop.base}/api/bookings",
        "parameters": BOOK_SCHEMA,
        "confirm": True,
    }
    created = api.post("/api/ai/tools", json=tool)
    assert created.status_code == 201, created.text
    openai_fake.reply_with(booking_assistant)
    return dict(created.json())


def rows(db: Any) -> list[ToolConfirmation]:
    return list(db.scalars(select(ToolConfirmation).order_by(ToolConfirmation.id)))


def test_the_booking_waits_for_yes_and_is_made_once(
    booking: dict[str, Any], db: Any, inbound: Callable[..., str], shop: Shop, api: Any
) -> None:
    customer = "+48600400001"
    asked = finished(db, inbound(customer, "Zarezerwuj proszę wtorek 10:00"))
    assert shop.seen == []  # asking the customer is all that happened
    [first] = answers(db, customer)
    assert "YES" in first.body and "book_slot" in first.body
    [call] = asked.tool_calls
    assert (call["state"], call["arguments"]) == ("awaiting_confirmation", {"slot": "wtorek 10:00"})
    [pending] = rows(db)
    assert pending.state == "pending" and pending.run_id == asked.id

    # Not an answer to the question: nothing is called, the request keeps waiting.
    finished(db, inbound(customer, "A ile to kosztuje?"))
    assert shop.seen == [] and rows(db)[0].state == "pending"

    agreed = finished(db, inbound(customer, "Tak"))
    assert sum(shop.bookings.values()) == 1
    [(method, path, _, headers, body)] = shop.seen
    assert (method, path, body) == ("POST", "/api/bookings", {"slot": "wtorek 10:00"})
    assert headers["idempotency-key"] in shop.bookings
    assert "booked" in answers(db, customer)[-1].body
    [done] = agreed.tool_calls
    assert (done["state"], done["status"]) == ("confirmed", 201)
    [row] = rows(db)
    assert (row.state, row.confirmed_run_id) == ("done", agreed.id)

    # A second yes finds nothing to confirm.
    finished(db, inbound(customer, "tak tak"))
    assert len(shop.seen) == 1
    states = [
        c["state"] for r in api.get("/api/automation/runs").json() for c in r["tool_calls"] or []
    ]
    assert sorted(states) == ["awaiting_confirmation", "confirmed"]


def test_no_drops_the_booking_and_an_expired_one_is_not_made(
    booking: dict[str, Any], db: Any, inbound: Callable[..., str], shop: Shop
) -> None:
    finished(db, inbound("+48600400002", "Zarezerwuj wtorek"))
    declined = finished(db, inbound("+48600400002", "Nie, jednak nie"))
    assert shop.seen == []
    assert [c["state"] for c in declined.tool_calls] == ["declined"]
    assert "said no" in answers(db, "+48600400002")[-1].body

    finished(db, inbound("+48600400003", "Zarezerwuj wtorek"))
    with session_scope() as session:
        session.execute(
            update(ToolConfirmation)
            .where(ToolConfirmation.state == "pending")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    late = finished(db, inbound("+48600400003", "tak"))
    assert shop.seen == [] and not late.tool_calls
    assert [r.state for r in rows(db)] == ["declined", "expired"]


def test_a_newer_request_replaces_the_older_one(
    booking: dict[str, Any], db: Any, inbound: Callable[..., str], shop: Shop
) -> None:
    finished(db, inbound("+48600400004", "Zarezerwuj wtorek"))
    finished(db, inbound("+48600400004", "Zarezerwuj jednak środę"))
    finished(db, inbound("+48600400004", "ok"))
    assert len(shop.seen) == 1  # one booking: the newer request
    assert [r.state for r in rows(db)] == ["superseded", "done"]


def test_a_person_stepping_in_or_an_opt_out_wins_over_a_pending_booking(
    booking: dict[str, Any], db: Any, inbound: Callable[..., str], shop: Shop, api: Any
) -> None:
    finished(db, inbound("+48600400005", "Zarezerwuj wtorek"))
    sent = api.post("/api/send-message", json={"to": "+48600400005", "body": "Tu Anna, pomogę."})
    assert sent.status_code in (200, 201, 202), sent.text
    paused = finished(db, inbound("+48600400005", "Tak"))
    assert paused.outcome == "paused" and shop.seen == []

    finished(db, inbound("+48600400006", "Zarezerwuj wtorek"))
    inbound("+48600400006", "STOP")  # an opt-out: Twilio answers it, the bot stays out
    after = finished(db, inbound("+48600400006", "Tak"))
    assert after.outcome == "opted_out" and shop.seen == []
    assert [r.state for r in rows(db)] == ["pending", "pending"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tak", "yes"),
        ("tak, proszę", "yes"),
        ("TAK!!!", "yes"),
        ("Yes please", "yes"),
        ("ok", "yes"),
        ("Potwierdzam", "yes"),
        ("Nie", "no"),
        ("no thanks", "no"),
        ("tak, ale nie w piątek", "no"),
        ("Anuluj", "no"),
        ("A ile to kosztuje?", None),
        ("", None),
        ("\x00tak", None),
        ("tak się zastanawiam, czy to dobry termin, bo w sumie nie wiem, jak to będzie", None),
        ("hmm", None),
        ("taki sobie", None),
    ],
)
def test_only_a_clear_yes_confirms(text: str, expected: str | None) -> None:
    assert confirming.verdict(text) == expected
