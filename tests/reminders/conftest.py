"""Helpers for the reminder tests: create through the API, make due, read what was sent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from relaydesk.messaging.models import Message
from relaydesk.reminders.models import Reminder


def later(**delta: float) -> str:
    """An ISO 8601 time with its zone, `delta` from now."""
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


@pytest.fixture
def new_reminder(api: httpx.Client) -> Callable[..., dict[str, Any]]:
    """Create a reminder whose first run is a day away unless `start_at` says otherwise."""

    def create(to: str, body: str = "Przypomnienie", **fields: Any) -> dict[str, Any]:
        payload = {"to": to, "body": body, "interval_minutes": 60, "start_at": later(days=1)}
        answer = api.post("/api/reminders", json={**payload, **fields})
        assert answer.status_code == 201, answer.text
        created: dict[str, Any] = answer.json()
        return created

    return create


def set_next_run(reminder_id: int, when: datetime) -> None:
    """Move the reminder's next slot (to make it due without waiting)."""
    from relaydesk.core.db import session_scope

    with session_scope() as session:
        session.execute(update(Reminder).where(Reminder.id == reminder_id).values(next_run_at=when))


def sent_to(db: Any, participant: str) -> list[Message]:
    """Reminder messages stored for a customer, oldest first."""
    return list(
        db.scalars(
            select(Message)
            .where(Message.participant == participant, Message.source == "reminder")
            .order_by(Message.id)
        )
    )
