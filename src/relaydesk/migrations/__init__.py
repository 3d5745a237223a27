"""Alembic migrations, applied by `relaydesk migrate` and by `serve` on SQLite."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from relaydesk.core.db import get_engine

HERE = Path(__file__).resolve().parent


def alembic_config() -> Config:
    """An Alembic configuration pointing at this folder."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    return config


def upgrade(revision: str = "head") -> None:
    """Bring the database schema up to `revision`."""
    engine = get_engine()
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def pending() -> bool:
    """True when the database is behind the newest migration."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with get_engine().connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current != head
