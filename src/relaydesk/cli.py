"""The `relaydesk` command: serve, worker, migrate, users, tokens, backup, sandbox."""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from relaydesk.config import ConfigError, Settings, get_settings
from relaydesk.errors import RelaydeskError

F = TypeVar("F", bound=Callable[..., Any])
FIRST_ADMIN_EMAIL = "admin@relaydesk.local"


def friendly(func: F) -> F:
    """Turn expected errors into one readable line and a non-zero exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        except RelaydeskError as exc:
            raise click.ClickException(exc.message) from None
        except OSError as exc:
            raise click.ClickException(
                f"{exc.strerror or exc}: {exc.filename or ''}".strip()
            ) from None
        except Exception as exc:
            if exc.__class__.__module__.startswith(("sqlalchemy", "psycopg", "alembic")):
                raise click.ClickException(f"database error: {_first_line(exc)}") from None
            raise

    return wrapper  # type: ignore[return-value]


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__


def _settings() -> Settings:
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # These log request details (headers, URLs with credentials) at INFO.
    for noisy in ("twilio.http_client", "httpx", "alembic", "huey"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return settings


@click.group()
@click.version_option(package_name="relaydesk")
def main() -> None:
    """relaydesk — messaging hub for Twilio SMS, MMS and WhatsApp."""


@main.command()
@friendly
def migrate() -> None:
    """Apply database migrations."""
    _settings()
    from relaydesk import migrations

    migrations.upgrade()
    click.echo("database is up to date")


def _prepare_database(settings: Settings) -> None:
    from relaydesk import migrations

    if settings.is_sqlite:
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        migrations.upgrade()
    elif migrations.pending():
        raise click.ClickException(
            "the PostgreSQL schema is not up to date: run 'relaydesk migrate' first"
        )


def _ensure_first_admin(settings: Settings) -> None:
    from relaydesk.auth import service as auth
    from relaydesk.db import session_scope

    with session_scope() as session:
        if auth.count_users(session) > 0:
            return
        password = secrets.token_urlsafe(12)
        auth.create_user(session, FIRST_ADMIN_EMAIL, password, "admin", "cli:serve")
    click.echo(
        "\n  First start: created the administrator account\n"
        f"    email:    {FIRST_ADMIN_EMAIL}\n"
        f"    password: {password}\n"
        "  Keep it safe; it is shown only this once.\n"
        "  API token for scripts: .venv/bin/relaydesk token create my-script\n"
    )


@main.command()
@click.option("--host", default=None, help="Address to listen on (default HOST or 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default PORT or 8000).")
@click.option("--no-worker", is_flag=True, help="Do not run background jobs.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Web processes sharing the port (default WEB_WORKERS or 1). With more than "
    "one, background jobs run in one extra worker process.",
)
@friendly
def serve(host: str | None, port: int | None, no_worker: bool, workers: int | None) -> None:
    """Run the web server (and, unless --no-worker, the background worker)."""
    settings = _settings()
    if port is not None:
        settings.port = port
    if host is not None:
        settings.host = host
    workers = workers or settings.web_workers
    if workers > 1 and settings.embedded_sandbox:
        raise click.ClickException(
            "--workers above 1 needs live Twilio or a standalone sandbox: the built-in "
            "emulator runs in one process. Start 'relaydesk sandbox --port 8001' and set "
            "TWILIO_API_BASE_URL=http://127.0.0.1:8001"
        )
    _prepare_database(settings)
    _ensure_first_admin(settings)
    import uvicorn

    mode = "SANDBOX (no Twilio account needed)" if settings.sandbox else "LIVE"
    click.echo(f"  relaydesk on http://{settings.host}:{settings.port}  mode: {mode}")
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.lower(),
        "proxy_headers": True,
        "access_log": False,
    }
    if workers == 1:
        from relaydesk.app import create_app

        uvicorn.run(create_app(run_worker=not no_worker), **options)
        return
    # Several processes: each web process stores its own webhooks (group commit per
    # process); one worker process runs the background jobs for all of them.
    from relaydesk.serving import run_web_processes

    os.environ["PORT"] = str(settings.port)
    os.environ["HOST"] = settings.host
    run_web_processes(workers, options, background_worker=not no_worker)


@main.command()
@friendly
def worker() -> None:
    """Run background jobs (start several on several machines with Redis)."""
    _settings()
    from relaydesk.tasks import run_worker

    run_worker()


@main.group()
def user() -> None:
    """Manage panel users."""


@user.command("create")
@click.option("--email", required=True)
@click.option("--password", required=True)
@click.option("--role", type=click.Choice(["admin", "operator", "viewer"]), default="operator")
@friendly
def user_create(email: str, password: str, role: str) -> None:
    """Create a user."""
    _settings()
    from relaydesk.auth import service as auth
    from relaydesk.db import session_scope

    with session_scope() as session:
        created = auth.create_user(session, email, password, role, "cli")
        email = created.email
    click.echo(f"created {role} {email}")


@main.group()
def token() -> None:
    """Manage API tokens."""


@token.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "operator", "viewer"]), default="operator")
@friendly
def token_create(name: str, role: str) -> None:
    """Create an API token; the token is printed alone on the last line."""
    _settings()
    from relaydesk.auth import service as auth
    from relaydesk.db import session_scope

    with session_scope() as session:
        _, plain = auth.create_token(session, name, role, "cli")
    click.echo(f"API token '{name}' ({role}); it is shown only once:")
    click.echo(plain)


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@friendly
def backup(path: Path) -> None:
    """Write a consistent copy of the SQLite database to PATH while the app runs."""
    settings = _settings()
    if not settings.is_sqlite:
        raise click.ClickException("backup copies SQLite databases; for PostgreSQL use pg_dump")
    source = settings.sqlite_path
    if not source.exists():
        raise click.ClickException(f"there is no database at {source}")
    if path.exists():
        raise click.ClickException(f"{path} already exists; choose a new file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(partial)
    try:
        src.backup(dst, pages=1024)
        check = dst.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        dst.close()
        src.close()
    if check != "ok":
        partial.unlink(missing_ok=True)
        raise click.ClickException(f"the copy failed its integrity check: {check}")
    partial.rename(path)
    click.echo(f"backup written to {path} ({path.stat().st_size:,} bytes)")


@main.command()
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=8001, type=int)
@click.option(
    "--webhook-base",
    default=None,
    help="Where relaydesk listens (default PUBLIC_BASE_URL or http://127.0.0.1:8000).",
)
@friendly
def sandbox(host: str, port: int, webhook_base: str | None) -> None:
    """Run the Twilio emulator as its own process (point TWILIO_API_BASE_URL at it)."""
    _settings()
    import uvicorn

    from relaydesk.channels.sandbox.app import create_sandbox_app

    click.echo(
        f"  Twilio sandbox on http://{host}:{port}  (TWILIO_API_BASE_URL=http://{host}:{port})"
    )
    uvicorn.run(create_sandbox_app(webhook_base), host=host, port=port, access_log=False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
