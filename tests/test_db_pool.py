"""The database pool outlasts the writers waiting for the write lock.

On SQLite a writer waits at the process's write gate holding a pool connection, and the
writer it waits for may need a second connection (the webhook writer reads a setting
while it stores a batch). With a pool smaller than the number of waiting writers (an
answer's burst: 16 model threads, the workers, the web threads) the holder waited for a
connection held by a writer waiting for it, until the lock timeout failed them all.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import event, text

from tests.conftest import wait_for

WRITERS = 30


def test_a_writer_that_needs_a_second_connection_is_not_starved_by_the_writers_waiting(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relaydesk.core import db as database
    from relaydesk.core.db import get_engine, session_scope

    monkeypatch.setattr(database, "WRITE_LOCK_TIMEOUT", 5.0)
    pool: Any = get_engine().pool
    done: list[int] = []
    errors: list[BaseException] = []
    writers_in: set[str] = set()  # the writer threads that got a connection

    def checked_out(*_: Any) -> None:
        if threading.current_thread().name.startswith("writer-"):
            writers_in.add(threading.current_thread().name)

    event.listen(pool, "checkout", checked_out)

    def write() -> None:
        try:
            with session_scope() as session:
                session.execute(text("SELECT 1"))  # SQLite: waits for the holder's lock here
            done.append(1)
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=write, name=f"writer-{n}") for n in range(WRITERS)]
    with session_scope() as holder:
        holder.execute(text("SELECT 1"))  # holds the write lock (and the gate)
        for thread in writers:
            thread.start()
        try:
            # Each writer has its connection, waiting for the lock (or is done already).
            wait_for(lambda: len(writers_in) == WRITERS, what="a connection for every writer")
            with session_scope(write=False) as second:
                assert second.execute(text("SELECT 41 + 1")).scalar() == 42
        finally:
            holder.commit()
            for thread in writers:
                thread.join(timeout=60)
            event.remove(pool, "checkout", checked_out)
    assert errors == []
    assert len(done) == WRITERS
