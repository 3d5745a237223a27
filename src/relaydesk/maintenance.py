"""Database housekeeping jobs."""

from __future__ import annotations

import logging

from relaydesk.auth.sessions import purge_expired
from relaydesk.core.db import get_engine, session_scope
from relaydesk.core.tasks import BULK, periodic

log = logging.getLogger(__name__)

# Rows sampled per index: enough for the planner to choose well, cheap on big tables.
ANALYSIS_LIMIT = 1000


def refresh_planner_statistics() -> None:
    """Give SQLite's query planner fresh statistics (PostgreSQL's autovacuum does its own)."""
    engine = get_engine()
    if engine.dialect.name != "sqlite":
        return
    # Take the write lock first: ANALYZE reads, then writes its statistics.
    with engine.execution_options(sqlite_immediate=True).connect() as conn:
        conn.exec_driver_sql(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


@periodic("maintenance.analyze", minutes="17", queue=BULK)
def analyze() -> None:
    """Hourly: refresh planner statistics so filtered inbox queries pick the right index."""
    refresh_planner_statistics()
    log.info("planner statistics refreshed")


@periodic("maintenance.sessions", minutes="*/30")
def purge_sessions() -> None:
    """Every half hour: forget expired panel sessions and old failed sign-ins."""
    with session_scope() as session:
        removed = purge_expired(session)
    if removed:
        log.info("removed %d expired panel sessions", removed)
