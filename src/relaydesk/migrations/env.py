"""Alembic environment: runs on the connection handed over by relaydesk.migrations."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from relaydesk.core import domains
from relaydesk.core.db import Base, get_engine
from relaydesk.migrations import migration_connection

domains.load_models()  # every table in the metadata

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        # The `alembic` command: as `relaydesk migrate` does (SQLite's foreign keys off).
        with migration_connection(get_engine()) as conn:
            _run_with(conn)
    else:
        _run_with(connection)


def _run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
