"""The copy itself: one transaction on the target, committed only once it verifies.

`_copy` checks both ends, has relaydesk's migrations create the schema, then
`_copy_rows` empties the seeded rows, drops the foreign keys, COPYs every table in
keyset batches (`_copy_table`, with a progress line every PROGRESS_SECONDS), adds the
foreign keys back with their own definitions, sets the sequences to max + 1 and reads
every table back for its count and checksum. A failure anywhere rolls everything back.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, cast

import psycopg
from sqlalchemy import create_engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from relaydesk import migrations
from relaydesk.dbcopy.checks import _check_empty, _check_source
from relaydesk.dbcopy.plans import Plan, Row, _q, plans
from relaydesk.dbcopy.readers import PostgresReader, Reader
from relaydesk.dbcopy.report import CopyError, CopyReport, TableReport, VerificationFailed, _reason
from relaydesk.dbcopy.sources import CONNECT_TIMEOUT, VERSION_TABLE, open_source
from relaydesk.dbcopy.urls import shown
from relaydesk.dbcopy.verify import Checksum, _digest

PROGRESS_SECONDS = 2.0

Progress = Callable[[str], None]


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
