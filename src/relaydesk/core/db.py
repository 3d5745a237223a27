"""Engine, sessions and the declarative base shared by every domain."""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Engine,
    Enum,
    MetaData,
    create_engine,
    event,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from relaydesk.core import clock, domains
from relaydesk.core.config import get_settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Autoincrementing 64-bit keys on PostgreSQL, INTEGER PRIMARY KEY (rowid) on SQLite.
BigId = BigInteger().with_variant(sqlite.INTEGER(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def state_type(enum: type[StrEnum], *, length: int, name: str) -> Enum:
    """A state machine's column: `enum`'s values in VARCHAR(`length`), with a CHECK.

    The CHECK constraint is named ck_<table>_<name> by the naming convention; the
    column reads back as members of `enum`, and a value outside it is refused before
    it reaches the database (and by the database for SQL written by hand).
    """
    return Enum(
        enum,
        native_enum=False,
        create_constraint=True,
        validate_strings=True,
        length=length,
        name=name,
        values_callable=_values,
    )


def _values(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC (from the injectable `core.clock`)."""
    return clock.now()


class Base(DeclarativeBase):
    """Base class of every table, with stable constraint names for migrations."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA cache_size=-65536")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


WRITE_LOCK_TIMEOUT = 10.0
SQLITE_MAX_OVERFLOW = 200


class _WriteGate:
    """The write lock among this process's threads, taken before SQLite's own.

    Threads of one process that want SQLite's write lock at once wait here, each woken
    when the writer before it is done, instead of polling SQLite (under load the polling
    cost a seventh of the CPU of an automatic answer). Polling remains for the lock held
    by another process. A connection that holds the gate is in `holders`; its commit,
    rollback, or return to the pool (whichever comes first) opens it.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holders: set[int] = set()  # id() of the DBAPI connections holding it
        self.guard = threading.Lock()

    def take(self, dbapi_conn: Any, timeout: float) -> bool:
        if not self.lock.acquire(timeout=max(timeout, 0.0)):
            return False  # held too long (a leak?): fall back to SQLite's lock alone
        with self.guard:
            self.holders.add(id(dbapi_conn))
        return True

    def give_back(self, dbapi_conn: Any) -> None:
        with self.guard:
            if id(dbapi_conn) not in self.holders:
                return
            self.holders.discard(id(dbapi_conn))
        self.lock.release()


def _begin_immediate(conn: Any, gate: _WriteGate) -> None:
    """Take SQLite's write lock, polling finely while another process holds it.

    SQLite's own busy handler sleeps 1, 2, 5 … 100 ms between tries; with several web
    processes writing, those sleeps (not the work) would set the latency. The execution
    option `sqlite_lock_timeout` shortens the wait for callers that have somewhere else
    to go (the webhook writer spools instead).
    """
    timeout = conn.get_execution_options().get("sqlite_lock_timeout", WRITE_LOCK_TIMEOUT)
    deadline = time.monotonic() + timeout
    dbapi_conn = conn.connection.dbapi_connection
    gate.take(dbapi_conn, timeout)
    # On the sqlite3 connection itself: through the engine, each of these two PRAGMAs
    # per write transaction cost as much as a query.
    raw = _raw(dbapi_conn)
    raw.execute("PRAGMA busy_timeout=0")
    try:
        delay = 0.0001
        while True:
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 0.002)
    except BaseException:
        gate.give_back(dbapi_conn)
        raise
    finally:
        raw.execute("PRAGMA busy_timeout=10000")


def _open_gate_after(engine: Engine, gate: _WriteGate) -> None:
    """Open the gate once a writer's transaction really ended (not just before)."""
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_conn: Any) -> None:
        try:
            commit(dbapi_conn)
        finally:
            gate.give_back(_raw(dbapi_conn))

    def do_rollback(dbapi_conn: Any) -> None:
        try:
            rollback(dbapi_conn)
        finally:
            gate.give_back(_raw(dbapi_conn))

    dialect.do_commit = do_commit  # type: ignore[method-assign,assignment]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign,assignment]

    # A connection closed or returned mid-transaction (an error) must not keep it shut.
    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_conn: Any, _record: Any) -> None:
        gate.give_back(dbapi_conn)

    @event.listens_for(engine, "close")
    def _closed(dbapi_conn: Any, _record: Any) -> None:
        gate.give_back(dbapi_conn)

    @event.listens_for(engine, "invalidate")
    def _invalidated(dbapi_conn: Any, _record: Any, _exc: Any) -> None:
        gate.give_back(dbapi_conn)


def _raw(dbapi_conn: Any) -> Any:
    """The sqlite3 connection behind a pool's proxy (or itself)."""
    return getattr(dbapi_conn, "dbapi_connection", dbapi_conn)


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 10},
            # Writers wait at the gate holding a connection each, and the writer they
            # wait for may need a second one (a settings read): the pool must not run
            # out before the threads that write do (web, workers, model threads). The
            # connections past the eight kept are closed when given back.
            pool_size=8,
            max_overflow=SQLITE_MAX_OVERFLOW,
            json_serializer=_json_text,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        gate = _WriteGate()
        _open_gate_after(engine, gate)

        # pysqlite's own transaction handling defers BEGIN; issue it ourselves so
        # that a write transaction takes the lock up front (no upgrade deadlocks).
        @event.listens_for(engine, "connect")
        def _no_auto_begin(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # Writers take the lock up front: a deferred transaction that reads and
            # then writes fails at once (SQLITE_BUSY_SNAPSHOT) if another writer
            # committed in between, whatever the busy timeout.
            if conn.get_execution_options().get("sqlite_immediate"):
                _begin_immediate(conn, gate)
            else:
                conn.exec_driver_sql("BEGIN")

        return engine
    return create_engine(
        url, pool_size=10, max_overflow=10, pool_pre_ping=True, json_serializer=_json_text
    )


def _json_text(value: Any) -> str:
    """JSON as stored: letters kept as they are, so a text search finds "zamówienie"."""
    return json.dumps(value, ensure_ascii=False)


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The process-wide engine built from settings."""
    # Every table must be mapped before the first flush: a worker process imports only
    # its task modules, and a flush sorts tables by their foreign keys (e.g. users).
    domains.load_models()
    return make_engine(get_settings().sqlalchemy_url)


@lru_cache(maxsize=1)
def get_sessionmaker() -> sessionmaker[Session]:
    """Factory of read sessions (deferred transactions)."""
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@lru_cache(maxsize=1)
def get_write_sessionmaker() -> sessionmaker[Session]:
    """Factory of write sessions: on SQLite their transactions take the write lock at BEGIN."""
    engine = get_engine().execution_options(sqlite_immediate=True)
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(write: bool = True) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on error (tasks and CLI use it)."""
    factory = get_write_sessionmaker() if write else get_sessionmaker()
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def bounded_wait(session: Session, seconds: float) -> Connection:
    """Begin `session`'s transaction, waiting at most `seconds` for any lock.

    SQLite: its write lock, taken at BEGIN. PostgreSQL: each row or table lock the
    transaction asks for (`lock_timeout`). A wait that runs out raises OperationalError,
    for callers that have somewhere else to go (the webhook spool).
    """
    conn = session.connection(execution_options={"sqlite_lock_timeout": seconds})
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {max(1, round(seconds * 1000))}")
    return conn


def is_lock_wait(exc: BaseException) -> bool:
    """True when `exc` says another transaction holds a lock we waited for in vain."""
    cause = getattr(exc, "orig", None) or exc
    # PostgreSQL's lock_not_available; SQLite's busy write lock.
    return getattr(cause, "sqlstate", None) == "55P03" or "database is locked" in str(cause)


def dialect_insert(session_or_engine: Session | Engine) -> Any:
    """The dialect's INSERT construct that supports ON CONFLICT (SQLite and PostgreSQL)."""
    bind = (
        session_or_engine.get_bind()
        if isinstance(session_or_engine, Session)
        else session_or_engine
    )
    return postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert


def database_kind() -> str:
    """'sqlite' or 'postgresql', for /health."""
    return "sqlite" if get_settings().is_sqlite else "postgresql"
