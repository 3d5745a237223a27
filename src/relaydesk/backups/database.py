"""Database snapshots: SQLite's online backup API, and pg_dump / pg_restore on PostgreSQL.

A PostgreSQL password goes to the tools in the PGPASSWORD environment variable, never
on their command line (where `ps` would show it); what they print on failure is passed
on without the connection string.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import make_conninfo
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from relaydesk.backups.manifest import BackupError, RestoreRefused


def sqlite_uri(path: Path, *, read_only: bool = True) -> str:
    """An SQLite URI for `path` (any character in the name is quoted)."""
    return path.resolve().as_uri() + ("?mode=ro" if read_only else "")


def sqlite_snapshot(source: Path, dest: Path) -> str | None:
    """Copy a live SQLite database with the online backup API; its Alembic revision.

    One backup step copies every page inside one read transaction: in WAL mode writers
    go on meanwhile, and the copy is the database as of that transaction's start (a
    step-by-step copy would start over each time another connection wrote). The copy
    must pass `PRAGMA integrity_check`.
    """
    src = sqlite3.connect(sqlite_uri(source), uri=True, timeout=30)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst)
        check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        revision = _sqlite_revision(dst)
    except sqlite3.Error as exc:
        raise BackupError(f"could not copy the SQLite database {source}: {exc}") from None
    finally:
        dst.close()
        src.close()
    if check != "ok":
        raise BackupError(f"the copy of {source} failed its integrity check: {check}")
    return revision


def sqlite_check(path: Path) -> str | None:
    """The Alembic revision of an SQLite file from an archive; RestoreRefused if damaged."""
    try:
        conn = sqlite3.connect(sqlite_uri(path), uri=True)
        try:
            check = conn.execute("PRAGMA integrity_check").fetchone()[0]
            revision = _sqlite_revision(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise RestoreRefused(f"its database is not a readable SQLite file ({exc})") from None
    if check != "ok":
        raise RestoreRefused(f"its database failed SQLite's integrity check: {check}")
    return revision


def _sqlite_revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        return None  # never migrated
    return str(row[0]) if row else None


# --- PostgreSQL ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    """How the PostgreSQL tools reach the configured database."""

    conninfo: str  # libpq keywords, without the password
    env: dict[str, str]  # the process environment plus PGPASSWORD when there is one
    database: str

    @classmethod
    def from_url(cls, url: str) -> Connection:
        """From DATABASE_URL (any driver suffix); query parameters become libpq keywords."""
        parsed = make_url(url)
        params: dict[str, str] = {}
        for key, value in parsed.query.items():
            params[key] = value if isinstance(value, str) else value[-1]
        params.update(
            {
                key: str(value)
                for key, value in (
                    ("host", parsed.host),
                    ("port", parsed.port),
                    ("user", parsed.username),
                    ("dbname", parsed.database),
                )
                if value
            }
        )
        env = dict(os.environ)
        if parsed.password:
            env["PGPASSWORD"] = str(parsed.password)
        return cls(make_conninfo("", **params), env, parsed.database or "")


def pg_tool(name: str) -> str:
    """The path of `pg_dump` or `pg_restore`: on PATH, else the newest in /usr/lib/postgresql."""
    found = shutil.which(name)
    if found:
        return found
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    if candidates:
        return max(candidates, key=_major_version)
    raise BackupError(
        f"{name} is not installed: PostgreSQL databases are saved and restored with "
        f"pg_dump and pg_restore of the server's major version (Debian/Ubuntu: apt-get "
        f"install postgresql-client)"
    )


def _major_version(path: str) -> int:
    match = re.search(r"/postgresql/(\d+)/", path)
    return int(match.group(1)) if match else 0


def pg_revision_and_version(url: str) -> tuple[str | None, str]:
    """The database's Alembic revision and the server's version."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            version = str(conn.execute(text("SHOW server_version")).scalar_one())
            if not inspect(conn).has_table("alembic_version"):
                return None, version
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            return (str(revision) if revision else None), version
    finally:
        engine.dispose()


def pg_dump(url: str, dest: Path) -> None:
    """Write the database to `dest` in pg_dump's custom format (one consistent snapshot)."""
    target = Connection.from_url(url)
    _run(
        [
            pg_tool("pg_dump"),
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            f"--file={dest}",
            f"--dbname={target.conninfo}",
        ],
        target.env,
        BackupError,
        "pg_dump failed",
    )


def pg_tables(url: str) -> list[str]:
    """The tables (and views) in the configured database's own schemas."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                    "WHERE table_schema <> 'information_schema' "
                    "AND table_schema NOT LIKE 'pg\\_%' ORDER BY 1"
                )
            ).scalars()
            return [str(name) for name in rows]
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        lines = str(cause).strip().splitlines() or [type(cause).__name__]
        raise RestoreRefused(
            f"cannot reach the PostgreSQL database of DATABASE_URL: {lines[0]}"
        ) from None
    finally:
        engine.dispose()


def pg_restore(url: str, dump: Path) -> None:
    """Load a custom-format dump into the (empty) database, all or nothing."""
    target = Connection.from_url(url)
    _run(
        [
            pg_tool("pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={target.conninfo}",
            str(dump),
        ],
        target.env,
        RestoreRefused,
        "pg_restore failed (nothing was loaded)",
    )


def _run(
    command: list[str],
    env: dict[str, str],
    error: type[BackupError] | type[RestoreRefused],
    what: str,
) -> None:
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise error(f"{what}: cannot run {command[0]}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        detail = "; ".join(lines[-3:]) or f"exit status {done.returncode}"
        raise error(f"{what}: {detail}")
