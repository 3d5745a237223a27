"""Sources: the database being moved, SQLite or PostgreSQL, opened read-only.

Each is read inside one read transaction, a consistent snapshot even while the app
writes (SQLite in WAL mode; REPEATABLE READ READ ONLY on PostgreSQL), and tells its
migration revision, its tables and their columns, and (SQLite) the rows whose foreign
keys point nowhere. `open_source` picks the kind from the configured URL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
from sqlalchemy.engine import URL

from relaydesk.dbcopy.plans import _q
from relaydesk.dbcopy.readers import PostgresReader, Reader, SqliteReader
from relaydesk.dbcopy.report import CopyError, _reason
from relaydesk.dbcopy.urls import shown

CONNECT_TIMEOUT = 10
VERSION_TABLE = "alembic_version"


class Source:
    """The database being moved, read inside one read transaction."""

    reader: Reader

    def revision(self) -> str | None:
        raise NotImplementedError

    def tables(self) -> set[str]:
        raise NotImplementedError

    def columns(self, table: str) -> list[str]:
        raise NotImplementedError

    def broken_references(self) -> list[str]:
        return []


class SqliteSource(Source):
    """A SQLite file opened read-only; its read transaction is the snapshot copied."""

    def __init__(self, path: Path) -> None:
        uri = f"file:{quote(str(path))}?mode=ro"
        self.conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
        self.conn.execute("BEGIN")  # the snapshot starts at the first read below
        self.reader = SqliteReader(self.conn)
        self._tables = {
            name
            for (name,) in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }

    def revision(self) -> str | None:
        if VERSION_TABLE not in self._tables:
            return None
        row = self.conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()  # noqa: S608
        return None if row is None else str(row[0])

    def tables(self) -> set[str]:
        return set(self._tables)

    def columns(self, table: str) -> list[str]:
        return [str(r[1]) for r in self.conn.execute(f"PRAGMA table_info({_q(table)})")]

    def broken_references(self) -> list[str]:
        return [
            f"{table} row {rowid} -> {parent}"
            for table, rowid, parent, _ in self.conn.execute("PRAGMA foreign_key_check")
        ]

    def close(self) -> None:
        self.conn.close()


class PostgresSource(Source):
    """A PostgreSQL database read in one REPEATABLE READ READ ONLY transaction."""

    def __init__(self, url: URL) -> None:
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.conn = psycopg.connect(conninfo, connect_timeout=CONNECT_TIMEOUT)
        self.conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        self.conn.read_only = True
        self.reader = PostgresReader(self.conn)

    def revision(self) -> str | None:
        if VERSION_TABLE not in self.tables():
            return None
        row = self.reader.fetch(f"SELECT version_num FROM {VERSION_TABLE}", ())  # noqa: S608
        return str(row[0][0]) if row else None

    def tables(self) -> set[str]:
        found = self.reader.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')",
            (),
        )
        return {str(r[0]) for r in found}

    def columns(self, table: str) -> list[str]:
        found = self.reader.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
            (table,),
        )
        return [str(r[0]) for r in found]

    def close(self) -> None:
        self.conn.close()


@contextmanager
def open_source(url: URL) -> Iterator[Source]:
    """The configured database, read-only, in one read transaction."""
    source: SqliteSource | PostgresSource
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise CopyError("the source is an in-memory SQLite database: nothing to copy")
        path = Path(url.database)
        if not path.is_file():
            raise CopyError(
                f"there is no database at {path}: run the copy with the DATA_DIR or DB_PATH "
                "(or DATABASE_URL) of the installation to move"
            )
        source = SqliteSource(path)
    elif url.get_backend_name() == "postgresql":
        try:
            source = PostgresSource(url)
        except psycopg.OperationalError as exc:
            raise CopyError(f"cannot connect to the source {shown(url)}: {_reason(exc)}") from None
    else:
        raise CopyError(f"the source must be SQLite or PostgreSQL, not {url.get_backend_name()}")
    try:
        yield source
    finally:
        source.close()
