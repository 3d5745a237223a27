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

The package, one reason to change per module: `report` (the report and the errors),
`urls` (the target URL; passwords masked), `plans` (what is copied: the tables and
their column kinds), `readers` (keyset pages of strictly converted values), `verify`
(the checksums), `sources` (the database being moved, in its read transaction),
`checks` (what refuses a copy before anything is written) and `copier` (the one
transaction on the target). `copy_database`, below, is the entry.
"""

from __future__ import annotations

import sqlite3

import psycopg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from relaydesk.dbcopy.copier import Progress, _copy
from relaydesk.dbcopy.report import CopyError, CopyReport, TableReport, VerificationFailed, _reason
from relaydesk.dbcopy.urls import Masker, shown, target_url

__all__ = [
    "BATCH_ROWS",
    "CopyError",
    "CopyReport",
    "Masker",
    "Progress",
    "TableReport",
    "VerificationFailed",
    "copy_database",
    "shown",
    "target_url",
]

BATCH_ROWS = 5_000


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
