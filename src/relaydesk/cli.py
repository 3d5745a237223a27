"""The `relaydesk` command: serve, worker, migrate, users, tokens, spool, backup, db, sandbox.

Each command imports what it needs inside its function: loading the whole application
(web framework, every domain, vendor SDKs) takes about a second, which a quick command
such as `relaydesk token create` or `--help` should not pay. This is the one place,
besides heavy optional libraries, where imports are deliberately function-local.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from relaydesk.core.config import SANDBOX_CREDENTIALS_FILE, ConfigError, Settings, get_settings
from relaydesk.core.errors import RelaydeskError

if TYPE_CHECKING:
    from relaydesk.dbcopy import CopyReport

F = TypeVar("F", bound=Callable[..., Any])
FIRST_ADMIN_EMAIL = "admin@relaydesk.local"
MIN_PASSWORD = 8


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
    _logging(settings)
    return settings


def _logging(settings: Settings) -> None:
    from relaydesk.core import logs

    logs.configure(settings)


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
    from relaydesk.core.db import session_scope

    with session_scope(write=False) as session:
        if auth.count_users(session) > 0:
            return
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if interactive:
        click.echo("\n  First start: create the administrator account.")
        email = _ask_email()
        password = _ask_new_password()
    else:
        email, password = FIRST_ADMIN_EMAIL, secrets.token_urlsafe(12)
    # Prompts ran outside any transaction: a write lock must not wait for a person.
    from relaydesk.core.errors import Conflict

    try:
        with session_scope() as session:
            if auth.count_users(session) > 0:
                return
            auth.create_user(session, email, password, "admin", "cli:serve")
    except Conflict:
        # Several web processes started at once (containers, systemd): another one
        # created the administrator a moment ago.
        return
    if interactive:
        click.echo(f"  Created the administrator {email}.\n")
        return
    click.echo(
        "\n  First start: created the administrator account\n"
        f"    email:    {email}\n"
        f"    password: {password}\n"
        "  Keep it safe; it is shown only this once.\n"
        "  API token for scripts: .venv/bin/relaydesk token create my-script\n"
    )


def _ask_email() -> str:
    """Ask for an email until it looks like one."""
    from relaydesk.auth.service import normalize_email
    from relaydesk.core.errors import Invalid

    while True:
        answer: str = click.prompt("  Administrator email", default=FIRST_ADMIN_EMAIL)
        try:
            return normalize_email(answer)
        except Invalid as exc:
            click.echo(f"  {exc.message}; try again.")


def _ask_new_password() -> str:
    """Ask for a password twice, hidden, until it is long enough and both match."""
    while True:
        first: str = click.prompt("  Password", hide_input=True)
        if len(first) < MIN_PASSWORD:
            click.echo(f"  The password must be at least {MIN_PASSWORD} characters; try again.")
            continue
        second: str = click.prompt("  Repeat the password", hide_input=True)
        if first == second:
            return first
        click.echo("  The two passwords differ; try again.")


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

    from relaydesk.channels.twilio.account import current_account

    live = current_account().mode == "live"
    mode = "LIVE" if live else "SANDBOX (no Twilio account needed)"
    click.echo(
        f"  relaydesk panel: http://{settings.host}:{settings.port}/ (sign in there)  mode: {mode}"
    )
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.lower(),
        # The app applies X-Forwarded-* from these proxies itself (relaydesk.core.proxies):
        # uvicorn doing it first would hide whether the peer was a proxy at all.
        "proxy_headers": False,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        # relaydesk writes its own access log (ACCESS_LOG, relaydesk.observe.access), and
        # uvicorn's lines go through relaydesk's handler (LOG_FORMAT) instead of its own.
        "access_log": False,
        "log_config": None,
        # Open live-update streams never end by themselves: give them a moment, then close.
        "timeout_graceful_shutdown": 3,
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
@click.option(
    "--queue",
    "queues",
    type=click.Choice(["live", "bulk"]),
    multiple=True,
    help="Run only this queue's jobs (repeatable); both by default. "
    "live: answers, sends, inbound, sweeps; bulk: campaigns, builds, syncs, media.",
)
@friendly
def worker(queues: tuple[str, ...]) -> None:
    """Run background jobs (start several on several machines with Redis)."""
    _settings()
    from relaydesk.core.tasks import QUEUES, run_worker

    run_worker(tuple(q for q in QUEUES if q in queues) or QUEUES)


@main.group()
def user() -> None:
    """Manage panel users."""
    # Registers the hooks that sign a disabled user, or one with a new password, out of
    # every browser.
    import relaydesk.auth.sessions  # noqa: F401


@user.command("create")
@click.option("--email", required=True)
@click.option("--password", required=True)
@click.option("--role", type=click.Choice(["admin", "operator", "viewer"]), default="operator")
@click.option("--name", default=None, help="How colleagues see this person (e.g. Anna).")
@friendly
def user_create(email: str, password: str, role: str, name: str | None) -> None:
    """Create a user."""
    _settings()
    from relaydesk.auth import service as auth
    from relaydesk.core.db import session_scope

    with session_scope() as session:
        created = auth.create_user(session, email, password, role, "cli", name)
        email = created.email
    click.echo(f"created {role} {email}")


@user.command("list")
@friendly
def user_list() -> None:
    """List users."""
    _settings()
    from relaydesk.auth import service as auth
    from relaydesk.core.db import session_scope

    with session_scope(write=False) as session:
        rows = [
            [
                u.id,
                u.email,
                u.name,
                u.role,
                "yes" if u.is_active else "no",
                u.last_login_at,
                u.created_at,
            ]
            for u in auth.list_users(session)
        ]
    _table(["ID", "EMAIL", "NAME", "ROLE", "ACTIVE", "LAST LOGIN", "CREATED"], rows)


@user.command("set-password")
@click.option("--email", required=True)
@click.option(
    "--password",
    prompt="New password",
    hide_input=True,
    confirmation_prompt="Repeat the password",
    help="The new password (asked for, hidden, when left out).",
)
@friendly
def user_set_password(email: str, password: str) -> None:
    """Give a user a new password."""
    _settings()
    user_id = _update_user(email, password=password)
    click.echo(f"new password set for {email.strip().lower()} (user {user_id})")


@user.command("rename")
@click.option("--email", required=True)
@click.option("--name", required=True, help='The name colleagues see ("" clears it).')
@friendly
def user_rename(email: str, name: str) -> None:
    """Set the name colleagues see for a user (in the inbox: "Anna assigned …")."""
    _settings()
    _update_user(email, name=name)
    click.echo(f"{email.strip().lower()} is now called {name.strip() or '(their e-mail)'}")


@user.command("disable")
@click.option("--email", required=True)
@friendly
def user_disable(email: str) -> None:
    """Deactivate a user: they cannot sign in and their API tokens are revoked."""
    _settings()
    _update_user(email, is_active=False)
    click.echo(f"disabled {email.strip().lower()}; their API tokens are revoked")


@user.command("enable")
@click.option("--email", required=True)
@friendly
def user_enable(email: str) -> None:
    """Let a deactivated user sign in again (revoked tokens stay revoked)."""
    _settings()
    _update_user(email, is_active=True)
    click.echo(f"enabled {email.strip().lower()}")


def _update_user(email: str, **changes: Any) -> int:
    from relaydesk.auth import service as auth
    from relaydesk.core.db import session_scope

    with session_scope() as session:
        found = auth.get_user_by_email(session, email)
        auth.update_user(session, found.id, actor=auth.system_principal("cli"), **changes)
        return found.id


def _table(headers: list[str], rows: list[list[Any]]) -> None:
    """Print rows as aligned columns; times in UTC to the minute, blanks as '-'."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%d %H:%M")
        return str(value)

    text = [headers, *[[cell(v) for v in row] for row in rows]]
    widths = [max(len(line[i]) for line in text) for i in range(len(headers))]
    for line in text:
        click.echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


@main.group()
def token() -> None:
    """Manage API tokens."""


@token.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "operator", "viewer"]), default="operator")
@click.option(
    "--user",
    "user_email",
    default=None,
    help="The user the token acts as (its calls count as theirs: assignee=me, notes).",
)
@friendly
def token_create(name: str, role: str, user_email: str | None) -> None:
    """Create an API token; the token is printed alone on the last line."""
    _settings()
    from relaydesk.auth import service as auth
    from relaydesk.core.db import session_scope

    with session_scope() as session:
        owner = auth.get_user_by_email(session, user_email).id if user_email else None
        _, plain = auth.create_token(session, name, role, "cli", user_id=owner)
    acting = f", acting as {user_email.strip().lower()}" if user_email else ""
    click.echo(f"API token '{name}' ({role}{acting}); it is shown only once:")
    click.echo(plain)


@token.command("list")
@friendly
def token_list() -> None:
    """List API tokens, newest first, revoked ones included."""
    _settings()
    from relaydesk.auth import service as auth
    from relaydesk.core.db import session_scope

    with session_scope(write=False) as session:
        rows = [
            [t.id, t.name, t.prefix + "…", t.role, t.created_at, t.last_used_at, t.revoked_at]
            for t in auth.list_tokens(session)
        ]
    _table(["ID", "NAME", "PREFIX", "ROLE", "CREATED", "LAST USED", "REVOKED"], rows)


@token.command("revoke")
@click.argument("token_id", metavar="ID", type=int)
@friendly
def token_revoke(token_id: int) -> None:
    """Revoke an API token at once (see 'relaydesk token list' for ids)."""
    _settings()
    from relaydesk.auth import service as auth
    from relaydesk.core.db import session_scope

    with session_scope() as session:
        revoked = auth.revoke_token(session, token_id, "cli")
        name = revoked.name
    click.echo(f"revoked token {token_id} ({name})")


@main.group("search")
def search_group() -> None:
    """The search index of messages and contacts (kept up to date in the background)."""


@search_group.command("status")
@friendly
def search_status() -> None:
    """How far the search index has read the message history."""
    _settings()
    from relaydesk.core.db import session_scope
    from relaydesk.messaging import search

    with session_scope(write=False) as session:
        state = search.status(session)
    click.echo(f"messages indexed up to id {state.position} of {state.newest}")
    click.echo(f"still to read:   {state.behind}")
    click.echo(f"contacts indexed: {state.contacts_indexed}")


@search_group.command("rebuild")
@click.option(
    "--background",
    is_flag=True,
    help="Only empty the index; the running server's worker fills it again.",
)
@friendly
def search_rebuild(background: bool) -> None:
    """Empty the search index and read the whole history into it again."""
    _settings()
    from relaydesk.core.db import session_scope
    from relaydesk.messaging import search

    with session_scope() as session:
        search.reset(session)
    click.echo("search index emptied")
    if background:
        return
    total, started = 0, time.monotonic()
    while True:
        done = search.catch_up(budget=5.0)
        total += done.indexed
        with session_scope(write=False) as session:
            behind = search.status(session).behind
        click.echo(f"indexed {total} rows; {behind} messages still to read")
        if not done.behind and behind == 0:
            break
        if not done.indexed and not done.behind:
            break  # only young rows left (PostgreSQL): the worker takes them in a moment
    click.echo(f"search index rebuilt in {time.monotonic() - started:.1f} s")


@main.group()
def spool() -> None:
    """Webhooks kept on disk: waiting for the database, or dead letters."""


@spool.command("status")
@friendly
def spool_status() -> None:
    """How many webhooks wait for the database and how many are dead letters."""
    _settings()
    from relaydesk.messaging import spool as webhook_spool

    counts = webhook_spool.counts()
    click.echo(f"waiting for the database: {counts.waiting}")
    click.echo(f"dead letters:             {counts.dead}")
    if counts.dead:
        click.echo("  list them with 'relaydesk spool dead'")


@spool.command("replay")
@friendly
def spool_replay() -> None:
    """Store the waiting webhooks now (the sweep does it every minute)."""
    _settings()
    from relaydesk.messaging import spool as webhook_spool

    handled = webhook_spool.replay()
    counts = webhook_spool.counts()
    click.echo(f"replayed {handled}; still waiting {counts.waiting}; dead letters {counts.dead}")


@spool.command("dead")
@friendly
def spool_dead() -> None:
    """List dead letters, newest first: webhooks that failed to be stored, with the error."""
    _settings()
    from relaydesk.messaging import spool as webhook_spool

    rows = [
        [
            e.id,
            e.failed_at,
            _one_line(e.kind, 20),
            _one_line(e.sid, 40) or "-",
            e.tries,
            _one_line(e.error or ""),
        ]
        for e in webhook_spool.dead_letters()
    ]
    if not rows:
        click.echo("no dead letters")
        return
    _table(["ID", "FAILED", "KIND", "SID", "TRIES", "ERROR"], rows)


def _one_line(text: str, width: int = 100) -> str:
    """Text from a webhook made safe for a terminal: one line, no control characters."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@spool.command("retry")
@click.argument("ids", metavar="[ID]...", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Retry every dead letter.")
@friendly
def spool_retry(ids: tuple[str, ...], every: bool) -> None:
    """Try dead letters again, e.g. after an upgrade fixed what made them fail."""
    if bool(ids) == every:
        raise click.UsageError(
            "name the dead letters to retry (see 'relaydesk spool dead') or use --all"
        )
    _settings()
    from relaydesk.messaging import spool as webhook_spool

    outcome = webhook_spool.retry(None if every else list(ids), actor="cli")
    click.echo(f"stored {outcome.stored}; still failing {outcome.failing}")
    for entry_id, error in outcome.errors.items():
        click.echo(f"  {entry_id}: {_one_line(error)}")
    if outcome.untried:
        raise click.ClickException(
            f"the database became unavailable; {outcome.untried} dead letter(s) were not tried"
        )
    if outcome.failing:
        raise click.ClickException(f"{outcome.failing} dead letter(s) still fail")


@spool.command("drop")
@click.argument("ids", metavar="ID...", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@friendly
def spool_drop(ids: tuple[str, ...], yes: bool) -> None:
    """Delete dead letters for good (recorded in the audit log)."""
    _settings()
    from relaydesk.messaging import spool as webhook_spool

    if not yes:
        click.confirm(
            f"Delete {len(ids)} dead letter(s)? The webhooks in them are lost for good",
            abort=True,
        )
    dropped = webhook_spool.drop(list(ids), actor="cli")
    click.echo(f"dropped {len(dropped)} dead letter(s)")


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@friendly
def backup(path: Path) -> None:
    """Write the whole installation to PATH (a new .tar.gz) while the app runs.

    A consistent database snapshot (SQLite's online backup, or pg_dump), the secret key,
    the sandbox's state, media, knowledge indexes, news files, voice-bot archives and the
    webhook spool, with a manifest of every file's size and SHA-256.
    """
    settings = _settings()
    from relaydesk.backups.writer import check_target, write_backup
    from relaydesk.core.ondisk import human_size

    check_target(path)  # before any work: a wrong name or an existing file
    report = write_backup(path, settings)
    manifest = report.manifest
    kind = "SQLite" if manifest.database_kind == "sqlite" else "PostgreSQL"
    click.echo(
        f"backup written to {path} ({human_size(report.archive_bytes)}, "
        f"{report.seconds:.1f} s): {kind} database and {len(manifest.files) - 1} files, "
        f"{human_size(manifest.data_bytes)} unpacked"
    )
    if manifest.secret_key == "archive":  # noqa: S105 (where the key is, not a key)
        click.echo("  the secret key is inside: keep the archive as safe as the server itself")
    else:
        click.echo(
            "  SECRET_KEY comes from the environment and is not inside: keep it with the "
            "archive, a restore needs the same one"
        )
    for item in manifest.skipped[:10]:
        click.echo(f"  left out {_one_line(item.path, 60)}: {item.reason}")
    if len(manifest.skipped) > 10:
        click.echo(f"  left out {len(manifest.skipped) - 10} more (listed in manifest.json)")


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@friendly
def restore(path: Path) -> None:
    """Restore a backup archive into an empty DATA_DIR (and, on PostgreSQL, an empty database).

    Every file is checked against the archive's manifest before anything is put in place.
    """
    from relaydesk.backups.reader import restore as restore_archive
    from relaydesk.core.config import load_settings
    from relaydesk.core.ondisk import human_size

    # Not get_settings(): it would generate a secret key into the empty DATA_DIR.
    settings = load_settings(create_files=False)
    _logging(settings)
    report = restore_archive(path, settings)
    manifest = report.manifest
    kind = "SQLite" if manifest.database_kind == "sqlite" else "PostgreSQL"
    click.echo(
        f"restored {path} (written {manifest.created_at} by relaydesk "
        f"{manifest.relaydesk_version}) into {report.data_dir}"
    )
    click.echo(f"  database: {kind}, {report.database}")
    click.echo(f"  files:    {report.files} ({human_size(report.data_bytes)})")
    for warning in report.warnings:
        click.echo(f"  warning: {warning}", err=True)
    for note in report.notes:
        click.echo(f"  next: {note}")


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
    settings = _settings()
    import uvicorn

    from relaydesk.channels.sandbox.app import create_sandbox_app

    click.echo(
        f"  Twilio sandbox on http://{host}:{port}  (TWILIO_API_BASE_URL=http://{host}:{port})"
    )
    click.echo(
        f"  Account SID {settings.account_sid}; its auth token: relaydesk sandbox-credentials"
    )
    uvicorn.run(create_sandbox_app(webhook_base), host=host, port=port, access_log=False)


@main.command("sandbox-credentials")
@friendly
def sandbox_credentials() -> None:
    """Print the Account SID and auth token the sandbox emulator accepts (Basic auth, signing)."""
    settings = _settings()
    if settings.twilio_mode == "live" and settings.mode_env_var == "TWILIO_MODE":
        raise click.ClickException(
            "TWILIO_MODE=live: relaydesk talks to Twilio here, not to the sandbox emulator"
        )
    click.echo(f"Account SID: {settings.account_sid}")
    click.echo(f"Auth token:  {settings.auth_token}")
    from_env = [
        name
        for name, value in (
            ("TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
            ("TWILIO_AUTH_TOKEN", settings.twilio_auth_token),
        )
        if value
    ]
    generated = settings.data_dir / SANDBOX_CREDENTIALS_FILE
    if len(from_env) < 2:
        click.echo(f"Generated for this DATA_DIR in {generated}; keep them private.")
    if from_env:
        click.echo(f"Set in the environment: {', '.join(from_env)} (they win).")


@main.group()
def db() -> None:
    """Move the database: copy it into an empty PostgreSQL database."""


@db.command("copy")
@click.option(
    "--to",
    "target",
    required=True,
    metavar="URL",
    envvar="TARGET_DATABASE_URL",
    help="The empty PostgreSQL database, postgresql://user:password@host:5432/name "
    "(or TARGET_DATABASE_URL, which keeps the password out of the shell history).",
)
@click.option(
    "--batch-rows",
    type=click.IntRange(100, 100_000),
    default=5_000,
    show_default=True,
    help="Rows read and written at a time.",
)
@friendly
def db_copy(target: str, batch_rows: int) -> None:
    """Copy the configured database (DATABASE_URL, or DB_PATH / DATA_DIR's SQLite file)
    into an EMPTY PostgreSQL database: the schema by relaydesk's migrations, every table
    in one transaction, sequences set, every table's count and checksum verified.
    Stop relaydesk first. Afterwards set DATABASE_URL to the target and start it again.
    """
    settings = _settings()
    from relaydesk import dbcopy

    try:
        report = dbcopy.copy_database(
            settings.sqlalchemy_url, target, batch_rows=batch_rows, progress=click.echo
        )
    except dbcopy.VerificationFailed as exc:
        _copy_summary(exc.report)
        raise click.ClickException(exc.message) from None
    _copy_summary(report)
    rate = report.rows / report.seconds if report.seconds else 0.0
    click.echo(
        f"copied {report.rows:,} rows of {len(report.tables)} tables in "
        f"{report.seconds:.1f} s ({rate:,.0f} rows/s); every count and checksum matches"
    )
    if report.not_copied:
        click.echo(f"not copied (not relaydesk's tables): {', '.join(report.not_copied)}")
    click.echo(f"next: set DATABASE_URL={report.target} (with its password) and start relaydesk")


def _copy_summary(report: CopyReport) -> None:
    rows = [
        [
            t.name,
            f"{t.source_rows:,}",
            f"{t.target_rows:,}",
            t.source_sha256[:12],
            t.target_sha256[:12],
            t.next_id,
            t.problem.upper() if t.problem else "ok",
        ]
        for t in report.tables
    ]
    _table(["TABLE", "SOURCE", "TARGET", "SHA-256 SOURCE", "SHA-256 TARGET", "NEXT ID", ""], rows)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
