"""`relaydesk db copy`: the whole database into an empty PostgreSQL, checked row by row.

Everything on the target happens in ONE transaction (PostgreSQL's DDL is transactional):

1. The target must be empty: no table, view or sequence in its schema (at most an
   empty `alembic_version`). The source must be at the newest migration.
2. relaydesk's own migrations create the schema (never `metadata.create_all`), so the
   target is at the source's revision; rows the migrations seed (`message_counters`)
   are emptied to make room for the source's own.
3. The foreign keys are dropped, every table is copied in foreign-key order
   (`Base.metadata.sorted_tables`) in batches - read by keyset pagination on the
   primary key, written with COPY - and the foreign keys are added back with their
   own definitions (`pg_get_constraintdef`), which checks every row at once, as
   pg_restore does: a self-referencing or circular key needs no particular row order.
   The CHECK constraints (revision 0010) stay and refuse a bad row by its key.
4. Every serial column's sequence is set to max + 1 (the migrations make BIGSERIAL ids).
5. Each table is read back: its row count and a SHA-256 over its rows in primary-key
   order, every value in a canonical form, must equal the source's.

Only then is the transaction committed. A copy that fails or is interrupted anywhere
leaves the target as empty as it was, so it can simply be run again.

The source is read in one read transaction, a consistent snapshot even while the app
writes (SQLite in WAL mode; REPEATABLE READ READ ONLY on PostgreSQL). Values are
converted strictly and never altered: a NUL character (PostgreSQL's text cannot hold
one), a string longer than its column, an integer beyond its column, a date that is
not one or JSON that PostgreSQL would refuse stops the copy, naming the table, column
and row. JSON is copied as the very text stored (SQL NULL and JSON null stay distinct).
Passwords in either URL never appear in a message.
"""

from __future__ import annotations

import hashlib
import math
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, quote_plus, unquote, urlsplit

import psycopg
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Integer,
    SmallInteger,
    String,
    create_engine,
)
from sqlalchemy import Column as SAColumn
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from relaydesk import migrations
from relaydesk.core import domains
from relaydesk.core.db import Base
from relaydesk.core.errors import RelaydeskError

BATCH_ROWS = 5_000
PROGRESS_SECONDS = 2.0
CONNECT_TIMEOUT = 10
VERSION_TABLE = "alembic_version"
POSTGRESQL_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
URL_EXAMPLE = "postgresql://user:password@host:5432/database"
SHOWN_NAMES = 8
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,30}")

Progress = Callable[[str], None]
Row = tuple[Any, ...]


class CopyError(RelaydeskError):
    """The copy was refused or failed; the target keeps what it had (nothing)."""


class VerificationFailed(CopyError):
    """The copy finished but a table's count or checksum differs; it was rolled back."""

    def __init__(self, message: str, report: CopyReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class TableReport:
    """One table: rows in the source (snapshot), copied, found in the target; checksums."""

    name: str
    source_rows: int
    copied: int = 0
    target_rows: int = 0
    source_sha256: str = ""
    target_sha256: str = ""
    next_id: int | None = None  # the primary key's sequence after the copy
    seconds: float = 0.0

    @property
    def problem(self) -> str | None:
        """What differs, or None."""
        if not self.source_rows == self.copied == self.target_rows:
            return "count differs"
        if self.source_sha256 != self.target_sha256:
            return "checksum differs"
        return None


@dataclass
class CopyReport:
    """What was copied, from where to where, and how long it took."""

    source: str
    target: str
    revision: str
    tables: list[TableReport] = field(default_factory=list)
    not_copied: list[str] = field(default_factory=list)  # source tables relaydesk lacks
    sequences: int = 0
    foreign_keys: int = 0
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        """Rows copied over all tables."""
        return sum(t.copied for t in self.tables)

    @property
    def failed(self) -> list[TableReport]:
        """Tables whose count or checksum differs."""
        return [t for t in self.tables if t.problem]


# --- URLs and passwords ---------------------------------------------------------------


def target_url(raw: str) -> URL:
    """The target as a psycopg URL; CopyError (echoing no password) when it is not one."""
    text = raw.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in POSTGRESQL_SCHEMES:
        named = f"'{scheme}://…' is not one" if SCHEME.fullmatch(scheme) else "got something else"
        raise CopyError(f"the target must be a PostgreSQL URL, {URL_EXAMPLE}; {named}")
    try:
        url = make_url("postgresql+psycopg://" + rest)
    except (ArgumentError, ValueError):
        raise CopyError(f"the target URL cannot be read; write it as {URL_EXAMPLE}") from None
    if not url.database:
        raise CopyError(f"name the target database in the URL: {URL_EXAMPLE}")
    return url


def shown(url: URL) -> str:
    """A URL fit to print: its password as ***."""
    return url.render_as_string(hide_password=True)


class Masker:
    """Replaces every form of the given URLs' passwords in a text with ***."""

    def __init__(self, *urls: URL, raw: Sequence[str] = ()) -> None:
        secrets: set[str] = set()
        for url in urls:
            if url.password:
                password = str(url.password)
                secrets |= {
                    password,
                    quote(password),
                    quote(password, safe=""),
                    quote_plus(password),
                }
        for text in raw:
            try:
                written = urlsplit(text.strip()).password
            except ValueError:
                written = None
            if written:
                secrets |= {written, unquote(written)}
        self._secrets = sorted((s for s in secrets if s), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _reason(exc: BaseException) -> str:
    """The first line of what the database said (the DBAPI error under SQLAlchemy's)."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip()
    return text.splitlines()[0] if text else cause.__class__.__name__


# --- What is copied: every table of every domain -----------------------------------------


@dataclass(frozen=True)
class Col:
    """A column as the copy sees it: a kind, and for text its length, for int its bits."""

    name: str
    kind: str  # "datetime", "bool", "int", "float", "json" or "text"
    limit: int | None = None


@dataclass(frozen=True)
class Plan:
    """One table to copy: its columns and which of them form the primary key."""

    table: str
    columns: tuple[Col, ...]
    key: tuple[int, ...]

    def key_text(self, row: Row) -> str:
        """The primary key of a row, as `id=12` or `provider='openai', model='x'`."""
        return ", ".join(f"{self.columns[i].name}={row[i]!r}" for i in self.key)


def plans() -> list[Plan]:
    """Every relaydesk table (every domain's models), parents before children."""
    domains.load_models()
    out = []
    for table in Base.metadata.sorted_tables:
        columns = tuple(_col(table.name, c) for c in table.columns)
        names = [c.name for c in columns]
        key = tuple(names.index(c.name) for c in table.primary_key.columns)
        if not key:
            raise CopyError(f"table {table.name} has no primary key: the copy cannot page it")
        out.append(Plan(table.name, columns, key))
    return out


def _col(table: str, column: SAColumn[Any]) -> Col:
    kind = column.type
    if isinstance(kind, TypeDecorator):
        kind = kind.impl_instance
    if isinstance(kind, DateTime):
        return Col(column.name, "datetime")
    if isinstance(kind, Boolean):
        return Col(column.name, "bool")
    if isinstance(kind, Integer):
        bits = 64 if isinstance(kind, BigInteger) else 16 if isinstance(kind, SmallInteger) else 32
        return Col(column.name, "int", bits)
    if isinstance(kind, Float):
        return Col(column.name, "float")
    if isinstance(kind, JSON):
        return Col(column.name, "json")
    if isinstance(kind, String):  # Text, and the state machines' Enum columns
        return Col(column.name, "text", kind.length)
    raise CopyError(f"{table}.{column.name}: the copy does not know the type {kind!r}")


# --- Reading: keyset pages of converted values ------------------------------------------

Convert = Callable[[Any], Any]


class Unfit(ValueError):
    """A stored value that PostgreSQL could not hold as it is."""


def _q(name: str) -> str:
    """A quoted SQL identifier (names come from relaydesk's own metadata)."""
    return '"' + name.replace('"', '""') + '"'


class Reader:
    """Pages of a table's rows in primary-key order, each value converted to its kind."""

    placeholder = "?"

    def fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        raise NotImplementedError

    def read_expr(self, col: Col) -> str:
        return _q(col.name)

    def key_expr(self, col: Col) -> str:
        return _q(col.name)

    def converter(self, col: Col) -> Convert | None:
        raise NotImplementedError

    def count(self, table: str) -> int:
        return int(self.fetch(f"SELECT count(*) FROM {_q(table)}", ())[0][0])  # noqa: S608

    def pages(self, plan: Plan, rows: int) -> Iterator[list[Row]]:
        """The table's rows, `rows` at a time (WHERE key > last key ORDER BY key LIMIT)."""
        columns = ", ".join(self.read_expr(c) for c in plan.columns)
        keys = ", ".join(self.key_expr(plan.columns[i]) for i in plan.key)
        marks = ", ".join(self.placeholder for _ in plan.key)
        first = f"SELECT {columns} FROM {_q(plan.table)} ORDER BY {keys} LIMIT {rows}"  # noqa: S608
        after = (
            f"SELECT {columns} FROM {_q(plan.table)} WHERE ({keys}) > ({marks}) "  # noqa: S608
            f"ORDER BY {keys} LIMIT {rows}"
        )
        converters = [(i, f) for i, c in enumerate(plan.columns) if (f := self.converter(c))]
        last: Row | None = None
        while True:
            page = self.fetch(first if last is None else after, last or ())
            if not page:
                return
            last = tuple(page[-1][i] for i in plan.key)
            yield _converted(plan, page, converters)
            if len(page) < rows:
                return


def _converted(plan: Plan, page: list[Row], converters: list[tuple[int, Convert]]) -> list[Row]:
    """The page with its values converted, column by column."""
    if not converters:
        return page
    columns: list[Sequence[Any]] = list(zip(*page, strict=True))
    for i, convert in converters:
        try:
            columns[i] = list(map(convert, columns[i]))
        except Unfit as exc:
            raw = next(row for row in page if _unfit(convert, row[i]))
            raise CopyError(
                f"table {plan.table}, row {plan.key_text(raw)}: {plan.columns[i].name} {exc}; "
                "nothing was copied (fix the value in the source, then copy again)"
            ) from None
    return list(zip(*columns, strict=True))


def _unfit(convert: Convert, value: Any) -> bool:
    try:
        convert(value)
    except Unfit:
        return True
    return False


class SqliteReader(Reader):
    """SQLite's stored values (text dates, 0/1 booleans, JSON text) checked and converted."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        return self.conn.execute(sql, tuple(params)).fetchall()

    def converter(self, col: Col) -> Convert | None:
        if col.kind == "datetime":
            return _sqlite_datetime
        if col.kind == "bool":
            return _sqlite_bool
        if col.kind == "int":
            return _int_within(col.limit or 64)
        if col.kind == "float":
            return _sqlite_float
        if col.kind == "json":
            return _sqlite_json
        return _text_within(col.limit)


def _sqlite_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise Unfit(f"is not a date and time: {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Unfit(f"is not a date and time: {value[:40]!r}") from None
    # Stored naive means UTC (relaydesk's UTCDateTime); an offset is converted.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _sqlite_bool(value: Any) -> bool | None:
    if value is None:
        return None
    if type(value) is int and value in (0, 1):
        return bool(value)
    raise Unfit(f"is not a boolean (0 or 1): {value!r}")


def _int_within(bits: int) -> Convert:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def convert(value: Any) -> int | None:
        if value is None:
            return None
        if type(value) is not int:
            raise Unfit(f"is not an integer: {value!r}")
        if not low <= value <= high:
            raise Unfit(f"is {value}, beyond the column's {bits}-bit integers")
        return value

    return convert


def _sqlite_float(value: Any) -> float | None:
    if value is None:
        return None
    if type(value) is int and float(value) == value:
        return float(value)
    if type(value) is float:
        return value
    raise Unfit(f"is not a number: {value!r}")


def _sqlite_json(value: Any) -> str | None:
    # The stored text as it is (PostgreSQL's json checks it and keeps it verbatim); a
    # JSON column has NUMERIC affinity in SQLite, so a bare number comes back as one.
    if value is None or isinstance(value, str):
        return value
    if type(value) is int:
        return str(value)
    if type(value) is float and math.isfinite(value):
        return repr(value)
    raise Unfit(f"is not JSON text: {value!r:.40}")


def _text_within(limit: int | None) -> Convert:
    def convert(value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise Unfit(f"is not text: {value!r:.40}")
        if "\x00" in value:
            raise Unfit(
                f"holds a NUL character at position {value.index(chr(0))}, which "
                "PostgreSQL's text cannot store"
            )
        if limit is not None and len(value) > limit:
            raise Unfit(f"is {len(value)} characters long; the column takes {limit}")
        return value

    return convert


class PostgresReader(Reader):
    """PostgreSQL's values: JSON read as its text, text keys in byte order (as SQLite's)."""

    placeholder = "%s"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        with self.conn.cursor() as cur:
            cur.execute(sql.encode(), tuple(params))
            return cur.fetchall()

    def read_expr(self, col: Col) -> str:
        return f"{_q(col.name)}::text" if col.kind == "json" else _q(col.name)

    def key_expr(self, col: Col) -> str:
        # SQLite compares text as bytes; so does the "C" collation.
        return f'{_q(col.name)} COLLATE "C"' if col.kind == "text" else _q(col.name)

    def converter(self, col: Col) -> Convert | None:
        return _utc if col.kind == "datetime" else None


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


# --- Checksums ------------------------------------------------------------------------


class Checksum:
    """SHA-256 over rows in primary-key order, one line per row.

    A line is the repr of the row's typed values: None, bool, int, float (its shortest
    exact form), str, JSON as its stored text, and datetimes in UTC to the microsecond,
    the same text whichever database the row was read from. A repr holds no line break.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def add(self, rows: list[Row]) -> None:
        if rows:
            text = "\n".join(map(repr, rows)) + "\n"
            self._hash.update(text.encode("utf-8", "surrogatepass"))

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _digest(reader: Reader, plan: Plan, rows: int) -> tuple[int, str]:
    checksum = Checksum()
    count = 0
    for page in reader.pages(plan, rows):
        checksum.add(page)
        count += len(page)
    return count, checksum.hexdigest()


# --- Sources ----------------------------------------------------------------------------


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


# --- The copy ---------------------------------------------------------------------------


def copy_database(
    source_url: str,
    target: str,
    *,
    batch_rows: int = BATCH_ROWS,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy the database at `source_url` into the empty PostgreSQL database `target`.

    Returns the report of a verified, committed copy. Raises CopyError when refused or
    failed, VerificationFailed (with the report) when a count or checksum differs; in
    both cases the target was left as it was.
    """
    say = progress or (lambda _line: None)
    try:
        source = make_url(source_url)
    except ArgumentError:
        raise CopyError("the configured DATABASE_URL cannot be read") from None
    mask = Masker(source, raw=[target])
    try:
        to = target_url(target)
        mask = Masker(source, to, raw=[target])
        return _copy(source, to, batch_rows, lambda line: say(mask(line)))
    except VerificationFailed:
        raise
    except CopyError as exc:
        raise CopyError(mask(exc.message)) from None
    except (SQLAlchemyError, psycopg.Error, sqlite3.Error) as exc:
        raise CopyError(mask(f"database error, nothing was kept: {_reason(exc)}")) from None


def _copy(source_url: URL, to: URL, batch_rows: int, say: Progress) -> CopyReport:
    started = time.perf_counter()
    tables = plans()
    with open_source(source_url) as source:
        revision = _check_source(source, source_url, tables)
        report = CopyReport(shown(source_url), shown(to), revision)
        known = {p.table for p in tables} | {VERSION_TABLE}
        report.not_copied = sorted(source.tables() - known)
        report.tables = [TableReport(p.table, source.reader.count(p.table)) for p in tables]
        engine = create_engine(
            to, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT}
        )
        try:
            try:
                conn = engine.connect()
            except SQLAlchemyError as exc:
                reason = _reason(exc)
                raise CopyError(f"cannot connect to the target {shown(to)}: {reason}") from None
            with conn, conn.begin():
                pg = cast(psycopg.Connection[Any], conn.connection.driver_connection)
                # A server's statement_timeout is for the app's queries, not this one.
                pg.execute("SET LOCAL statement_timeout = 0")
                _check_empty(pg, to)
                say(f"copying {report.source} (revision {revision}) to {report.target}")
                for name in report.not_copied:
                    say(f"  not copied: table {name} is not one of relaydesk's")
                lap = _laps()
                migrations.upgrade_on(conn)
                say(f"  schema created by relaydesk's migrations up to {revision} ({lap()})")
                _copy_rows(pg, source.reader, tables, report, batch_rows, say)
                report.seconds = time.perf_counter() - started
                if report.failed:
                    names = ", ".join(t.name for t in report.failed)
                    raise VerificationFailed(
                        f"verification failed for {names}: nothing was kept, the target "
                        "is empty again",
                        report,
                    )
                lap()
            say(f"  committed ({lap()})")
        finally:
            engine.dispose()
    report.seconds = time.perf_counter() - started
    return report


def _laps() -> Callable[[], str]:
    """A stopwatch: each call gives the time since the previous one, as '1.2 s'."""
    last = [time.perf_counter()]

    def lap() -> str:
        now = time.perf_counter()
        seconds, last[0] = now - last[0], now
        return f"{seconds:.1f} s"

    return lap


def _check_source(source: Source, url: URL, tables: list[Plan]) -> str:
    revision = source.revision()
    head = migrations.head()
    if revision is None:
        raise CopyError(f"{shown(url)} holds no relaydesk database: nothing to copy")
    if revision != head:
        raise CopyError(
            f"the source database is at revision {revision}, this relaydesk's newest is "
            f"{head}: run 'relaydesk migrate' first (with the app stopped), then copy"
        )
    present = source.tables()
    for plan in tables:
        if plan.table not in present:
            raise CopyError(f"the source lacks table {plan.table}: it is not relaydesk's schema")
        found, expected = set(source.columns(plan.table)), {c.name for c in plan.columns}
        if found != expected:
            extra = ", ".join(sorted(found - expected)) or "-"
            lacking = ", ".join(sorted(expected - found)) or "-"
            raise CopyError(
                f"the source's table {plan.table} differs from relaydesk's at {head} "
                f"(columns it has in addition: {extra}; it lacks: {lacking})"
            )
    broken = source.broken_references()
    if broken:
        more = f" and {len(broken) - SHOWN_NAMES} more" if len(broken) > SHOWN_NAMES else ""
        raise CopyError(
            "the source's rows refer to rows that do not exist ("
            + "; ".join(broken[:SHOWN_NAMES])
            + f"{more}): PostgreSQL would refuse them; nothing was copied"
        )
    return revision


KINDS = {"r": "table", "p": "table", "f": "table", "v": "view", "m": "view", "S": "sequence"}


def _check_empty(pg: psycopg.Connection[Any], to: URL) -> None:
    """Refuse a target holding anything but, at most, an empty alembic_version."""
    schema = pg.execute("SELECT current_schema()").fetchone()
    if schema is None or schema[0] is None:
        raise CopyError(f"{shown(to)} has no schema to create tables in (see its search_path)")
    found = pg.execute(
        "SELECT c.relname, c.relkind FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
        "ORDER BY c.relname"
    ).fetchall()
    if [name for name, _ in found] == [VERSION_TABLE]:
        versions = pg.execute("SELECT count(*) FROM alembic_version").fetchone()
        if versions is not None and versions[0] == 0:
            return
    if found:
        raise CopyError(
            f"the target {shown(to)} is not empty: schema {schema[0]} holds "
            f"{_inventory(found)}; nothing was changed. Copy into a new, empty database "
            "(e.g. createdb)"
        )


def _inventory(found: list[tuple[str, str]]) -> str:
    """`2 tables (a, b) and 1 sequence (a_id_seq)`, at most SHOWN_NAMES names each."""
    parts = []
    for kind in ("table", "view", "sequence"):
        names = [name for name, code in found if KINDS.get(code) == kind]
        if names:
            listed = ", ".join(names[:SHOWN_NAMES]) + (", …" if len(names) > SHOWN_NAMES else "")
            parts.append(f"{len(names)} {kind}{'s' if len(names) > 1 else ''} ({listed})")
    return " and ".join(parts)


def _copy_rows(
    pg: psycopg.Connection[Any],
    reader: Reader,
    tables: list[Plan],
    report: CopyReport,
    batch_rows: int,
    say: Progress,
) -> None:
    names = ", ".join(_q(p.table) for p in tables)
    pg.execute(f"TRUNCATE {names}".encode())  # rows the migrations seeded
    foreign_keys = pg.execute(
        "SELECT c.conrelid::regclass::text, quote_ident(c.conname), pg_get_constraintdef(c.oid) "
        "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
        "WHERE c.contype = 'f' AND n.nspname = current_schema() ORDER BY 1, 2"
    ).fetchall()
    for table, name, _ in foreign_keys:
        pg.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}".encode())
    say(f"  copying {len(tables)} tables, {batch_rows:,} rows at a time")
    lap = _laps()
    by_name = {t.name: t for t in report.tables}
    for plan in tables:
        _copy_table(pg, reader, plan, by_name[plan.table], batch_rows, say)
    lap()
    for table, name, definition in foreign_keys:
        try:
            pg.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}".encode())
        except psycopg.errors.ForeignKeyViolation as exc:
            detail = exc.diag.message_detail or ""
            raise CopyError(
                f"table {table} refers to rows that do not exist ({name}): {detail} "
                "Nothing was kept."
            ) from None
    report.foreign_keys = len(foreign_keys)
    say(f"  foreign keys: {len(foreign_keys)} added back, every row checked ({lap()})")
    report.sequences = _reset_sequences(pg, tables, report)
    pg.execute(f"ANALYZE {names}".encode())
    say(f"  sequences: {report.sequences} set to the largest id + 1; statistics gathered ({lap()})")
    target = PostgresReader(pg)
    for plan in tables:
        entry = by_name[plan.table]
        entry.target_rows = target.count(plan.table)
        _, entry.target_sha256 = _digest(target, plan, batch_rows)
    say(f"  verified: row counts and SHA-256 checksums of {len(tables)} tables read back ({lap()})")


def _copy_table(
    pg: psycopg.Connection[Any],
    reader: Reader,
    plan: Plan,
    entry: TableReport,
    batch_rows: int,
    say: Progress,
) -> None:
    started = shown_at = time.perf_counter()
    columns = ", ".join(_q(c.name) for c in plan.columns)
    statement = f"COPY {_q(plan.table)} ({columns}) FROM STDIN".encode()
    checksum = Checksum()
    with pg.cursor() as cur:
        for page in reader.pages(plan, batch_rows):
            try:
                with cur.copy(statement) as copy:
                    for row in page:
                        copy.write_row(row)
            except psycopg.Error as exc:
                raise CopyError(_refused(plan, page, exc)) from None
            checksum.add(page)
            entry.copied += len(page)
            now = time.perf_counter()
            if now - shown_at >= PROGRESS_SECONDS and entry.copied < entry.source_rows:
                shown_at = now
                say(_progress_line(entry, now - started))
    entry.seconds = time.perf_counter() - started
    entry.source_sha256 = checksum.hexdigest()
    say(_progress_line(entry, entry.seconds))


def _progress_line(entry: TableReport, seconds: float) -> str:
    rate = f"  {entry.copied / seconds:>9,.0f} rows/s" if entry.copied and seconds > 0 else ""
    return (
        f"  {entry.name:<26} {entry.copied:>11,} / {entry.source_rows:,} rows"
        f"  {seconds:6.1f} s{rate}"
    )


def _refused(plan: Plan, page: list[Row], exc: psycopg.Error) -> str:
    """Which row PostgreSQL refused (COPY's context names its line) and why."""
    line = re.search(r"COPY [^,]+, line (\d+)", exc.diag.context or "")
    where = f"table {plan.table}"
    if line and 0 < int(line.group(1)) <= len(page):
        where += f", row {plan.key_text(page[int(line.group(1)) - 1])}"
    why = exc.diag.message_primary or _reason(exc)
    return f"{where}: PostgreSQL refused it: {why}. Nothing was kept."


def _reset_sequences(pg: psycopg.Connection[Any], tables: list[Plan], report: CopyReport) -> int:
    """setval every serial column's sequence to max + 1 (1 for an empty table)."""
    found = pg.execute(
        "SELECT c.relname, a.attname, s.seq FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "CROSS JOIN LATERAL pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), "
        "a.attname) AS s(seq) "
        "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND s.seq IS NOT NULL"
    ).fetchall()
    keys = {p.table: {p.columns[i].name for i in p.key} for p in tables}
    by_name = {t.name: t for t in report.tables}
    for table, column, sequence in found:
        row = pg.execute(
            f"SELECT setval(%s::regclass, COALESCE(max({_q(column)}), 0) + 1, false) "  # noqa: S608
            f"FROM {_q(table)}".encode(),
            (sequence,),
        ).fetchone()
        if row is not None and table in by_name and column in keys.get(table, ()):
            by_name[table].next_id = int(row[0])
    return len(found)
