"""Alembic migrations, applied by `relaydesk migrate` and by `serve` on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from relaydesk.core.db import get_engine

HERE = Path(__file__).resolve().parent


def alembic_config() -> Config:
    """An Alembic configuration pointing at this folder."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    return config


def upgrade(revision: str = "head", engine: Engine | None = None) -> None:
    """Bring the database schema up to `revision`."""
    with migration_connection(engine or get_engine()) as conn:
        upgrade_on(conn, revision)


def upgrade_on(conn: Connection, revision: str = "head") -> None:
    """Bring `conn`'s database up to `revision` inside the transaction `conn` has open.

    The caller commits, or rolls back (on PostgreSQL the schema changes too).
    """
    command.upgrade(_config_on(conn), revision)


def downgrade(revision: str, engine: Engine | None = None) -> None:
    """Take the database schema back to `revision`."""
    with migration_connection(engine or get_engine()) as conn:
        command.downgrade(_config_on(conn), revision)


def _config_on(conn: Connection) -> Config:
    config = alembic_config()
    config.attributes["connection"] = conn
    return config


# A fixed key for PostgreSQL's advisory lock that serialises concurrent migrations.
MIGRATION_LOCK = 0x72656C6179  # "relay"


@contextmanager
def migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction, fit for migrating `engine`'s database.

    SQLite changes a table's constraints by building a new table and dropping the old
    one (batch mode); with foreign keys on, that drop would cascade into the tables
    referring to it (and delete their rows). So they are off while migrating (SQLite
    ignores the switch inside a transaction, hence outside it), and checked before the
    commit.
    """
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            _foreign_keys(conn, on=False)
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    # Containers started together each migrate at start: one at a time,
                    # and the later ones find the schema already at its revision.
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
                yield conn
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"the migration broke foreign keys: {broken[:10]}")
        finally:
            if sqlite:
                _foreign_keys(conn, on=True)


def _foreign_keys(conn: Connection, *, on: bool) -> None:
    # On the driver's connection: a statement through `conn` would open a transaction.
    conn.connection.driver_connection.execute(  # type: ignore[union-attr]
        f"PRAGMA foreign_keys={'ON' if on else 'OFF'}"
    )


def head() -> str | None:
    """The newest migration's revision."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current(conn: Connection) -> str | None:
    """The revision `conn`'s database is at (None: no relaydesk schema)."""
    return MigrationContext.configure(conn).get_current_revision()


def pending() -> bool:
    """True when the database is behind the newest migration."""
    with get_engine().connect() as conn:
        return current(conn) != head()
