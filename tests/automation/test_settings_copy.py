"""The settings an automatic answer reads come from the process's copy while the stored
version says it is current; a change made anywhere is seen by the next transaction.

An answer read the rules, the AI, the auto-reply and the business hours as rows, several
times each (ten queries of the settings table per answer). The copy is checked with one
primary-key read of `settings_version` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event, update

from relaydesk.automation import settings as cfg
from relaydesk.core import settings_store
from relaydesk.core.db import get_engine, session_scope
from relaydesk.core.models import Setting
from tests.automation.conftest import answers, finished
from tests.automation.test_pipeline import auto_reply

Inbound = Callable[..., str]


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every SQL statement the process runs meanwhile."""
    seen: list[str] = []

    def spy(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        seen.append(" ".join(statement.split()))

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", spy)
    yield seen
    event.remove(engine, "before_cursor_execute", spy)


def test_an_answer_reads_no_settings_rows_once_the_copy_is_current(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    rules: Callable[..., Any],
    statements: list[str],
) -> None:
    rules()
    auto_reply(api)
    finished(db, inbound("+48600200401", "Dzień dobry"))  # the copy is made here
    statements.clear()
    sid = inbound("+48600200402", "Czy jesteście otwarci?")
    assert finished(db, sid).outcome == "auto_reply"
    [answer] = answers(db, "+48600200402")
    assert answer.body == "Dziękujemy, odpiszemy wkrótce."
    rows = [s for s in statements if " FROM settings " in f"{s} "]
    assert rows == [], rows
    assert any("FROM settings_version" in s for s in statements)


def test_a_change_is_seen_by_the_next_transaction_and_not_by_a_stale_copy(
    api: httpx.Client, db: Any, inbound: Inbound, rules: Callable[..., Any]
) -> None:
    rules()
    auto_reply(api, "Pierwsza odpowiedź")
    with session_scope(write=False) as session:
        assert cfg.read_auto_reply(session).message == "Pierwsza odpowiedź"
    auto_reply(api, "Druga odpowiedź")  # saved by the server's request, another session
    with session_scope(write=False) as session:
        assert cfg.read_auto_reply(session).message == "Druga odpowiedź"
    sid = inbound("+48600200403", "Halo")
    finished(db, sid)
    [answer] = answers(db, "+48600200403")
    assert answer.body == "Druga odpowiedź"


def test_a_transaction_that_changes_settings_reads_its_own_rows(
    api: httpx.Client, rules: Callable[..., Any]
) -> None:
    rules()
    auto_reply(api, "Przed zmianą")
    with session_scope() as session:
        before = cfg.read_auto_reply(session)
        cfg.save_auto_reply(session, cfg.AutoReply(enabled=True, message="Po zmianie"), "test")
        assert cfg.read_auto_reply(session).message == "Po zmianie"
        assert before.message == "Przed zmianą"
        session.rollback()
    with session_scope(write=False) as session:
        assert cfg.read_auto_reply(session).message == "Przed zmianą"


def test_a_value_changed_by_its_reader_does_not_change_the_copy(
    api: httpx.Client, rules: Callable[..., Any]
) -> None:
    rules(takeover_minutes=15)
    with session_scope(write=False) as session:
        first = settings_store.read(session, [cfg.RULES_KEY]).values[cfg.RULES_KEY]
        first["takeover_minutes"] = 999
    with session_scope(write=False) as session:
        assert cfg.read_rules(session).takeover_minutes == 15


def test_rows_changed_without_the_version_are_not_seen_until_it_moves(
    api: httpx.Client, rules: Callable[..., Any]
) -> None:
    """The version is the contract: every change goes through `save`, which moves it.
    (This shows the copy is really used; a hand-made UPDATE is not a way to change
    settings.)"""
    rules(takeover_minutes=15)
    with session_scope(write=False) as session:
        assert cfg.read_rules(session).takeover_minutes == 15
    with session_scope() as session:
        row = session.get(Setting, cfg.RULES_KEY)
        assert row is not None
        session.execute(
            update(Setting)
            .where(Setting.key == cfg.RULES_KEY)
            .values(value={**row.value, "takeover_minutes": 30})
        )
    with session_scope(write=False) as session:
        assert cfg.read_rules(session).takeover_minutes == 15
    rules(takeover_minutes=45)
    with session_scope(write=False) as session:
        assert cfg.read_rules(session).takeover_minutes == 45
