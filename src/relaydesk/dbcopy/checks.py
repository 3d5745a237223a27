"""What refuses a copy before anything is written.

The source must be a relaydesk database at this relaydesk's newest migration, with each
of relaydesk's tables and exactly its columns, and no row referring to a row that does
not exist; the target must be empty (at most an empty `alembic_version`) and have a
schema to create tables in. A refusal names what it found, at most SHOWN_NAMES of each.
"""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy.engine import URL

from relaydesk import migrations
from relaydesk.dbcopy.plans import Plan
from relaydesk.dbcopy.report import CopyError
from relaydesk.dbcopy.sources import VERSION_TABLE, Source
from relaydesk.dbcopy.urls import shown

SHOWN_NAMES = 8


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
