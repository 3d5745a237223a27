"""Digest test helpers: a stand-in for the news index, recipients made due on a chosen day."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select, update

from relaydesk.digests.models import NewsRecipient
from relaydesk.messaging.models import Message


@dataclass
class FakeIndex:
    """Answers `retrieval.answer` like an index of a few articles, with or without an LLM."""

    llm_text: str | None = None  # None: no model configured, the digest uses the headlines
    empty: bool = False
    error: Exception | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, query: str, **options: Any) -> Any:
        from relaydesk.indexes.retrieval import Answer, Passage

        self.calls.append({"query": query, **options})
        if self.error is not None:
            raise self.error
        if self.empty:
            return Answer(None, [], None, "No passage of the index is similar enough")
        passages = [
            Passage(
                "Stopy procentowe bez zmian",
                "https://news.example/rates",
                "biznes",
                0.81,
                "RPP pozostawiła stopy bez zmian.",
                "RPP pozostawiła stopy bez zmian.",
            ),
            Passage(
                "Nowy smartfon",
                "https://news.example/phone",
                "tech",
                0.74,
                "Premiera nowego telefonu.",
                "Premiera nowego telefonu.",
            ),
            Passage(
                "Inflacja spada",
                "https://news.example/cpi",
                "biznes",
                0.7,
                "Inflacja w maju spadła.",
                "Inflacja w maju spadła.",
            ),
        ]
        note = None if self.llm_text else "No language model is configured"
        return Answer(self.llm_text, passages, "fake-llm" if self.llm_text else None, note)


@pytest.fixture
def news_index(monkeypatch: pytest.MonkeyPatch) -> FakeIndex:
    """Put a fake index behind `relaydesk.indexes.retrieval.answer` (no FAISS index needed)."""
    from relaydesk.indexes import retrieval

    fake = FakeIndex()
    monkeypatch.setattr(retrieval, "answer", fake.answer)
    return fake


def set_state(recipient_id: int, **values: Any) -> None:
    """Write stored state directly (active_since, last_sent_on…), as a past run would have."""
    from relaydesk.core.db import session_scope

    with session_scope() as session:
        session.execute(
            update(NewsRecipient).where(NewsRecipient.id == recipient_id).values(**values)
        )


def stored(db: Any, recipient_id: int) -> NewsRecipient:
    found = db.scalar(select(NewsRecipient).where(NewsRecipient.id == recipient_id))
    assert found is not None
    return found  # type: ignore[no-any-return]


def digests_to(db: Any, participant: str) -> list[Message]:
    """News messages stored for a number, oldest first."""
    return list(
        db.scalars(
            select(Message)
            .where(Message.participant == participant, Message.source == "news")
            .order_by(Message.id)
        )
    )


def warsaw(text: str) -> datetime:
    """A wall-clock time in Warsaw ('2030-03-05 08:00') as an aware datetime."""
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/Warsaw"))


SETTLED = ("delivered", "undelivered", "failed", "read", "canceled")


@pytest.fixture(autouse=True)
def settle_deliveries(server: Any) -> Iterator[None]:
    """After the test, wait until the emulator's status callbacks for the digests are in.

    The next test's clean-up deletes every message; a callback still being written for
    this test's message would otherwise race it (a deadlock on PostgreSQL).
    """
    yield
    from relaydesk.core.db import get_sessionmaker
    from tests.conftest import wait_for

    def settled() -> bool:
        with get_sessionmaker()() as session:
            pending = session.scalars(
                select(Message.id).where(
                    Message.direction == "outbound", Message.status.not_in(SETTLED)
                )
            ).first()
        return pending is None

    wait_for(settled, timeout=30, what="the digests' delivery callbacks")
