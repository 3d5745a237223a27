"""Helpers for the automation tests: inbound webhooks, settings, waiting for runs."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from relaydesk.automation.models import AutomationRun
from relaydesk.core.config import get_settings
from relaydesk.messaging.models import Message
from tests.conftest import wait_for
from tests.fakes import FakeOpenAI
from tests.fakes.shop import Shop
from tests.web.conftest import make_user, panel  # noqa: F401 (fixtures: a signed-in panel)

OUR_NUMBER = "+15005550006"
_sids = itertools.count(1)


def new_sid() -> str:
    """A fresh, valid-looking Twilio message SID."""
    return f"SM{next(_sids):032x}"


@pytest.fixture
def shop(monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    """The shop on loopback, which tools may call (the guard would refuse it otherwise;
    the model too is on loopback)."""
    monkeypatch.setattr(get_settings(), "tools_allow_private_networks", True)
    monkeypatch.setattr(get_settings(), "llm_allow_private_networks", True)
    with Shop() as running:
        yield running


@pytest.fixture
def inbound(twilio_post: Callable[..., httpx.Response]) -> Callable[..., str]:
    """Deliver a signed inbound webhook; returns its SID."""

    def send(
        from_: str, body: str, *, sid: str | None = None, to: str = OUR_NUMBER, **extra: str
    ) -> str:
        sid = sid or new_sid()
        params = {"MessageSid": sid, "From": from_, "To": to, "Body": body, **extra}
        response = twilio_post("/twilio/inbound", params)
        assert response.status_code == 200, response.text
        return sid

    return send


@pytest.fixture
def rules(api: httpx.Client) -> Callable[..., dict[str, Any]]:
    """Change the automation rules (debounce 0 unless given)."""

    def change(**fields: Any) -> dict[str, Any]:
        response = api.put("/api/automation/rules", json={"debounce_seconds": 0, **fields})
        assert response.status_code == 200, response.text
        return dict(response.json())

    return change


@pytest.fixture
def ai_on(
    api: httpx.Client, openai_fake: FakeOpenAI, rules: Callable[..., Any]
) -> Callable[..., dict[str, Any]]:
    """Switch AI replies on against the fake OpenAI server."""

    def switch(**fields: Any) -> dict[str, Any]:
        rules()
        payload = {
            "enabled": True,
            "provider": "openai",
            "model": "gpt-4o-mini",
            "base_url": openai_fake.base_url,
            "api_key": "sk-test-key-123",
            **fields,
        }
        response = api.put("/api/ai/config", json=payload)
        assert response.status_code == 200, response.text
        return dict(response.json())

    return switch


def run_of(db: Any, sid: str) -> AutomationRun | None:
    """The automation run of the inbound message with this SID."""
    return db.scalar(
        select(AutomationRun)
        .join(Message, Message.id == AutomationRun.inbound_message_id)
        .where(Message.sid == sid)
    )


def finished(db: Any, sid: str) -> AutomationRun:
    """Wait until the message's run is done and return it."""

    def check() -> AutomationRun | None:
        found = run_of(db, sid)
        return found if found is not None and found.state == "done" else None

    result: AutomationRun = wait_for(check, what=f"the automation run of {sid}")
    return result


def answers(db: Any, participant: str) -> list[Message]:
    """Automatic answers sent to a customer, oldest first."""
    return list(
        db.scalars(
            select(Message)
            .where(
                Message.participant == participant,
                Message.direction == "outbound",
                Message.source.in_(["auto_reply", "ai", "assistant"]),
            )
            .order_by(Message.id)
        )
    )
