"""SQLite writers of one process wait for each other at a gate, not by polling SQLite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from relaydesk.core.db import make_engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
    yield engine
    engine.dispose()


def writer(engine: Engine) -> Session:
    return Session(engine.execution_options(sqlite_immediate=True))


def begins(engine: Engine) -> list[str]:
    """Every BEGIN IMMEDIATE issued (each try), in order."""
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(conn, cursor, statement, *rest):  # type: ignore[no-untyped-def]
        if statement == "BEGIN IMMEDIATE":
            seen.append(threading.current_thread().name)

    return seen


def test_a_second_writer_waits_at_the_gate_without_polling(engine: Engine) -> None:
    tries = begins(engine)
    first = writer(engine)
    first.execute(text("INSERT INTO t VALUES (1)"))  # holds the write lock
    started = threading.Event()

    def second() -> None:
        started.set()
        with writer(engine) as session, session.begin():
            session.execute(text("INSERT INTO t VALUES (2)"))

    thread = threading.Thread(target=second, name="second")
    thread.start()
    started.wait()
    thread.join(timeout=0.3)  # long enough for hundreds of polls of SQLite's lock
    assert thread.is_alive()  # still waiting for the first writer
    first.commit()
    first.close()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert tries.count("second") == 1  # one BEGIN, once the first writer was done
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM t ORDER BY n")).scalars().all() == [1, 2]


@pytest.mark.parametrize("end", ["rollback", "close", "error"])
def test_a_writer_that_ends_without_commit_opens_the_gate(engine: Engine, end: str) -> None:
    first = writer(engine)
    first.execute(text("INSERT INTO t VALUES (1)"))
    if end == "rollback":
        first.rollback()
    elif end == "close":
        first.close()  # returned to the pool mid-transaction
    else:
        with pytest.raises(Exception, match="no such table"):
            first.execute(text("INSERT INTO missing VALUES (1)"))
        first.rollback()
    done = threading.Event()

    def second() -> None:
        with writer(engine) as session, session.begin():
            session.execute(text("INSERT INTO t VALUES (2)"))
        done.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert done.wait(timeout=5), "the gate stayed shut"
    thread.join()
    first.close()


def test_a_short_lock_timeout_gives_up_at_the_gate_too(engine: Engine) -> None:
    """The webhook writer spools instead of waiting: its short timeout still holds."""
    from sqlalchemy.exc import OperationalError

    first = writer(engine)
    first.execute(text("INSERT INTO t VALUES (1)"))
    failed: list[BaseException] = []

    def second() -> None:
        session = writer(engine)
        try:
            session.connection(execution_options={"sqlite_lock_timeout": 0.05})
        except OperationalError as exc:
            failed.append(exc)
        finally:
            session.close()

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert failed and "locked" in str(failed[0])
    first.commit()
    first.close()
    # Nothing was left shut by the writer that gave up.
    with writer(engine) as session, session.begin():
        session.execute(text("INSERT INTO t VALUES (3)"))
