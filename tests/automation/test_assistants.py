"""Assistants per number: greeting and answer, sessions, whole-word end keywords, API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from relaydesk.automation.assistants import DEFAULT_END_KEYWORDS, ends_session
from relaydesk.automation.models import AssistantSession
from tests.automation.conftest import OUR_NUMBER, answers, finished
from tests.fakes import FakeOpenAI

Inbound = Callable[..., str]
GREETING = "Dzień dobry, tu Cukiernia Ola!"


@pytest.fixture
def assistant(api: httpx.Client, ai_on: Callable[..., Any]) -> dict[str, Any]:
    """An assistant with a greeting, bound to our sandbox number, AI provider configured."""
    ai_on(enabled=False)
    created = api.post(
        "/api/assistants",
        json={
            "name": "Cukiernia",
            "first_message": GREETING,
            "system_prompt": "Odpowiadasz klientom cukierni.",
            "model": "gpt-4o",
            "temperature": 0.1,
        },
    )
    assert created.status_code == 201, created.text
    bound = api.post(
        "/api/phone-numbers", json={"number": OUR_NUMBER, "assistant_id": created.json()["id"]}
    )
    assert bound.status_code == 201, bound.text
    return dict(created.json())


def test_end_keywords_match_whole_words_only() -> None:
    assert ends_session("Miłego weekendu!", ["end"]) is None
    assert ends_session("Ok, BYE!", DEFAULT_END_KEYWORDS) == "bye"
    assert ends_session("Dzięki, do  widzenia.", DEFAULT_END_KEYWORDS) == "do widzenia"
    assert ends_session("byebye", DEFAULT_END_KEYWORDS) is None
    assert ends_session("Koniec.", DEFAULT_END_KEYWORDS) == "koniec"


def test_default_end_keywords_leave_opt_out_words_to_opt_out(api: httpx.Client) -> None:
    created = api.post("/api/assistants", json={"name": "Domyślny"})
    assert created.status_code == 201
    words = created.json()["end_keywords"]
    assert words == DEFAULT_END_KEYWORDS
    assert not {"stop", "end", "quit", "cancel"} & set(words)
    clash = api.post("/api/assistants", json={"name": "Zły", "end_keywords": ["bye", "STOP"]})
    assert clash.status_code == 422
    assert "opt-out" in clash.json()["detail"]


def test_a_new_session_greets_and_answers_the_question(
    db: Any, inbound: Inbound, assistant: dict[str, Any], openai_fake: FakeOpenAI
) -> None:
    customer = "+48600300001"
    first = inbound(customer, "Ile kosztuje tort czekoladowy?")
    assert finished(db, first).outcome == "assistant"
    [answer] = answers(db, customer)
    assert answer.body == f"{GREETING}\n\nEcho: Ile kosztuje tort czekoladowy?"
    assert answer.source == "assistant"
    request = openai_fake.requests[-1]
    assert request["model"] == "gpt-4o" and request["temperature"] == 0.1
    system = request["messages"][0]["content"]
    assert system.startswith("Odpowiadasz klientom cukierni.") and GREETING in system

    # Within the session: no second greeting; "weekend" does not end it.
    second = inbound(customer, "A na weekend macie sernik?")
    assert finished(db, second).outcome == "assistant"
    assert answers(db, customer)[-1].body == "Echo: A na weekend macie sernik?"
    history = [m["role"] for m in openai_fake.requests[-1]["messages"]]
    assert history == ["system", "user", "assistant", "user"]

    # An end keyword closes the session without an answer; the next message greets again.
    bye = inbound(customer, "Dzięki, bye!")
    run = finished(db, bye)
    assert run.outcome == "session_ended"
    assert len(answers(db, customer)) == 2
    again = inbound(customer, "Jeszcze jedno pytanie")
    assert finished(db, again).outcome == "assistant"
    assert answers(db, customer)[-1].body.startswith(GREETING)
    ended = db.scalars(select(AssistantSession).order_by(AssistantSession.id)).all()
    assert [s.end_reason for s in ended] == ["keyword", None]


def test_a_session_ends_after_the_quiet_timeout(
    db: Any, inbound: Inbound, assistant: dict[str, Any]
) -> None:
    from relaydesk.core.db import session_scope, utcnow

    customer = "+48600300002"
    finished(db, inbound(customer, "Pierwsze pytanie"))
    finished(db, inbound(customer, "Drugie pytanie"))
    assert not answers(db, customer)[-1].body.startswith(GREETING)
    with session_scope() as session:  # 31 quiet minutes pass
        session.execute(
            update(AssistantSession).values(last_activity_at=utcnow() - timedelta(minutes=31))
        )
    finished(db, inbound(customer, "Po przerwie"))
    assert answers(db, customer)[-1].body.startswith(GREETING)
    sessions = db.scalars(select(AssistantSession).order_by(AssistantSession.id)).all()
    assert [s.end_reason for s in sessions] == ["timeout", None]


def test_opt_out_wins_over_the_assistant(
    db: Any, inbound: Inbound, assistant: dict[str, Any]
) -> None:
    customer = "+48600300003"
    finished(db, inbound(customer, "Dzień dobry"))
    inbound(customer, "END")  # a session end word in document 002, an opt-out at Twilio
    later = inbound(customer, "Halo")
    assert finished(db, later).outcome == "opted_out"
    assert len(answers(db, customer)) == 1


def test_assistant_test_endpoint_shows_greeting_and_sends_nothing(
    api: httpx.Client, db: Any, assistant: dict[str, Any]
) -> None:
    response = api.post(
        f"/api/assistants/{assistant['id']}/test",
        json={"participant": "+48600300004", "message": "Czy robicie torty weselne?"},
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["new_session"] is True
    assert result["reply"] == f"{GREETING}\n\nEcho: Czy robicie torty weselne?"
    assert answers(db, "+48600300004") == []


def test_assistant_and_number_api_round_trip(api: httpx.Client, assistant: dict[str, Any]) -> None:
    listed = api.get("/api/assistants").json()
    assert [(a["name"], a["numbers"]) for a in listed] == [("Cukiernia", [OUR_NUMBER])]
    changed = api.put(
        f"/api/assistants/{assistant['id']}",
        json={"name": "Cukiernia Ola", "session_timeout_minutes": 45, "end_keywords": ["pa pa"]},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["end_keywords"] == ["pa pa"]
    assert changed.json()["numbers"] == [OUR_NUMBER]
    numbers = api.get("/api/phone-numbers").json()
    assert numbers[0]["assistant_name"] == "Cukiernia Ola"

    bad = api.post("/api/phone-numbers", json={"number": "12ab", "assistant_id": assistant["id"]})
    assert bad.status_code == 422
    missing = api.post("/api/phone-numbers", json={"number": "+48221000000", "assistant_id": 999})
    assert missing.status_code == 404
    whatsapp = api.post(
        "/api/phone-numbers",
        json={"number": "whatsapp:+48 22 100 00 00", "assistant_id": assistant["id"]},
    )
    assert whatsapp.status_code == 201 and whatsapp.json()["number"] == "+48221000000"
    duplicate = api.post("/api/assistants", json={"name": "Cukiernia Ola"})
    assert duplicate.status_code == 409

    assert api.delete(f"/api/assistants/{assistant['id']}").status_code == 204
    assert api.get("/api/phone-numbers").json() == []
    assert api.get(f"/api/assistants/{assistant['id']}").status_code == 404
