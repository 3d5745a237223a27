"""Reading: a table's rows in keyset pages, each value converted to its kind.

A Reader pages a table in primary-key order (WHERE key > last key ORDER BY key LIMIT),
the same order on both databases. SqliteReader checks and converts SQLite's stored
values strictly and never alters one: a value PostgreSQL could not hold as it is raises
Unfit, which stops the copy naming the table, row and column. PostgresReader reads a
PostgreSQL source, and the target when it is read back to be verified.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from relaydesk.dbcopy.plans import Col, Plan, Row, _q
from relaydesk.dbcopy.report import CopyError

Convert = Callable[[Any], Any]


class Unfit(ValueError):
    """A stored value that PostgreSQL could not hold as it is."""


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
