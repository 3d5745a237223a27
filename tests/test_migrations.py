"""The status CHECK constraints (revision 0010): they go on and come off on SQLite and
PostgreSQL without losing a row, the database then refuses an unknown status, and an
unknown value already stored stops the upgrade with the rows named."""

from __future__ import annotations

import importlib
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, Table, create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from relaydesk import migrations
from relaydesk.core.db import Base, make_engine
from tests.conftest import BACKEND

# The revision's own list of constrained columns and their values.
CHECKS: dict[str, dict[str, tuple[str, ...]]] = importlib.import_module(
    "relaydesk.migrations.versions.0010_status_check_constraints"
).CHECKS
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """An empty database of the suite's backend, separate from the server's."""
    if BACKEND != "postgresql":
        fresh = make_engine(f"sqlite:///{tmp_path / 'migrations.db'}")
        yield fresh
        fresh.dispose()
        return
    url = make_url(os.environ["DATABASE_URL"])
    name = f"relaydesk_migrations_{secrets.token_hex(4)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    fresh = make_engine(url.set(database=name).render_as_string(hide_password=False))
    try:
        yield fresh
    finally:
        fresh.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}"'))
        admin.dispose()


def _insert(conn: Any, table: str, **values: Any) -> int:
    # The model's columns that the database has at this revision (later ones add more).
    existing = {column["name"] for column in inspect(conn).get_columns(table)}
    model = Base.metadata.tables[table]
    found = Table(table, MetaData(), *(c._copy() for c in model.columns if c.name in existing))
    result = conn.execute(found.insert().values(**values))
    return int(result.inserted_primary_key[0])


def _fill(engine: Engine) -> None:
    """One row in each constrained table (and the rows that refer to a message)."""
    with engine.begin() as conn:
        contact = _insert(conn, "contacts", phone="+48600100200", channel="sms")
        conversation = _insert(
            conn,
            "conversations",
            contact_id=contact,
            participant="+48600100200",
            channel="sms",
            our_address="+48500000000",
        )
        common = {
            "channel": "sms",
            "participant": "+48600100200",
            "conversation_id": conversation,
            "body": "Dzień dobry",
            "media": [],
        }
        inbound = _insert(
            conn,
            "messages",
            direction="inbound",
            from_addr="+48600100200",
            to_addr="+48500000000",
            status="received",
            source="webhook",
            **common,
        )
        outbound = _insert(
            conn,
            "messages",
            direction="outbound",
            from_addr="+48500000000",
            to_addr="+48600100200",
            status="pending",
            submit_state="in_flight",
            source="api",
            next_attempt_at=NOW,
            **common,
        )
        _insert(conn, "message_events", message_id=outbound, sid="SM1", status="sent", payload={})
        _insert(conn, "attachments", message_id=inbound, position=0, state="pending")
        _insert(
            conn,
            "automation_runs",
            inbound_message_id=inbound,
            conversation_id=conversation,
            participant="+48600100200",
            state="done",
            outcome="auto_reply",
            reply_message_id=outbound,
        )
        batch = _insert(
            conn,
            "multi_sms_batches",
            body="x",
            status="processing",
            sender="+48500000000",
            total=1,
            valid=1,
            duplicates=0,
            invalid=[],
            segments_per_message=1,
        )
        _insert(
            conn,
            "multi_sms_recipients",
            batch_id=batch,
            input="600100200",
            number="+48600100200",
            status="queued",
            message_id=outbound,
        )
        _insert(conn, "jobs", kind="news.scrape", status="running", params={})
        reminder = _insert(
            conn,
            "reminders",
            to_addr="+48600100200",
            participant="+48600100200",
            channel="sms",
            body="x",
            interval_minutes=60,
            start_at=NOW,
            next_run_at=NOW,
            last_outcome="sent",
            created_by="test",
        )
        _insert(
            conn,
            "reminder_runs",
            reminder_id=reminder,
            seq=1,
            due_at=NOW,
            ran_at=NOW,
            outcome="sent",
            message_id=outbound,
        )
        _insert(
            conn,
            "news_recipients",
            phone="+48600100200",
            send_time="08:00",
            mode="all_categories",
            last_outcome="skipped",
        )
        _insert(conn, "voicebot_sync_runs", trigger="manual", status="done")


def _counts(engine: Engine) -> dict[str, int]:
    tables = ["message_events", "attachments", "automation_runs", "multi_sms_recipients"]
    tables += list(CHECKS)
    with engine.connect() as conn:
        return {
            t: conn.execute(select(func.count()).select_from(Base.metadata.tables[t])).scalar_one()
            for t in tables
        }


def _checks(engine: Engine) -> set[str]:
    found = set()
    inspector = inspect(engine)
    for table in (*CHECKS, "conversations"):
        found |= {c["name"] for c in inspector.get_check_constraints(table)}
    return found


def _indexes(engine: Engine) -> dict[str, Any]:
    inspector = inspect(engine)
    return {
        table: sorted(
            (
                i["name"],
                tuple(i["column_names"]),
                sorted((k, str(v)) for k, v in i.get("dialect_options", {}).items()),
            )
            for i in inspector.get_indexes(table)
        )
        for table in CHECKS
    }


def _revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


EXPECTED = {f"ck_{table}_{column}" for table, columns in CHECKS.items() for column in columns}
LATER = {"ck_conversations_status", "ck_conversations_priority"}


def test_the_status_checks_go_on_and_come_off_without_losing_a_row(engine: Engine) -> None:
    migrations.upgrade("0009", engine=engine)
    _fill(engine)
    rows, indexes = _counts(engine), _indexes(engine)
    assert _checks(engine) == set()

    migrations.upgrade("0010", engine=engine)
    assert _revision(engine) == "0010"
    assert _checks(engine) == EXPECTED
    assert _counts(engine) == rows  # nothing cascaded away when SQLite rebuilt the tables
    assert _indexes(engine) == indexes  # partial indexes keep their WHERE

    migrations.downgrade("0009", engine=engine)
    assert _revision(engine) == "0009"
    assert _checks(engine) == set()
    assert _counts(engine) == rows
    assert _indexes(engine) == indexes

    migrations.upgrade("head", engine=engine)
    # Later revisions add their own (0012: a conversation's status and priority).
    assert _checks(engine) == EXPECTED | LATER


@pytest.mark.parametrize(
    ("statement", "constraint"),
    [
        ("UPDATE messages SET status = 'lost'", "ck_messages_status"),
        ("UPDATE messages SET submit_state = 'maybe'", "ck_messages_submit_state"),
        ("UPDATE multi_sms_batches SET status = 'done'", "ck_multi_sms_batches_status"),
        ("UPDATE multi_sms_recipients SET status = 'sent'", "ck_multi_sms_recipients_status"),
        ("UPDATE jobs SET status = 'canceled'", "ck_jobs_status"),
        ("UPDATE attachments SET state = 'gone'", "ck_attachments_state"),
        ("UPDATE automation_runs SET state = 'stuck'", "ck_automation_runs_state"),
        ("UPDATE automation_runs SET outcome = 'shrug'", "ck_automation_runs_outcome"),
        ("UPDATE reminders SET last_outcome = 'failed'", "ck_reminders_last_outcome"),
        ("UPDATE reminder_runs SET outcome = 'failed'", "ck_reminder_runs_outcome"),
        ("UPDATE news_recipients SET last_outcome = 'taken'", "ck_news_recipients_last_outcome"),
        ("UPDATE voicebot_sync_runs SET status = 'paused'", "ck_voicebot_sync_runs_status"),
    ],
)
def test_the_database_refuses_an_unknown_status(
    engine: Engine, statement: str, constraint: str
) -> None:
    migrations.upgrade("head", engine=engine)
    _fill(engine)
    with pytest.raises(IntegrityError) as refused, engine.begin() as conn:
        conn.execute(text(statement))
    assert constraint in str(refused.value)  # both databases name the constraint


def test_null_stays_allowed_where_the_column_allows_it(engine: Engine) -> None:
    migrations.upgrade("head", engine=engine)
    _fill(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE messages SET submit_state = NULL"))
        conn.execute(text("UPDATE automation_runs SET outcome = NULL"))
        conn.execute(text("UPDATE reminders SET last_outcome = NULL"))


def test_an_unknown_stored_value_stops_the_upgrade_and_changes_nothing(engine: Engine) -> None:
    migrations.upgrade("0009", engine=engine)
    _fill(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET status = 'zombie'"))
        conn.execute(text("UPDATE messages SET status = 'lost' WHERE direction = 'inbound'"))
    with pytest.raises(RuntimeError) as stopped:
        migrations.upgrade("head", engine=engine)
    message = str(stopped.value)
    assert "jobs.status = 'zombie': 1 row(s)" in message
    assert "messages.status = 'lost': 1 row(s)" in message
    assert _revision(engine) == "0009"
    assert _checks(engine) == set()
    # Once corrected, the upgrade goes through.
    with engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET status = 'failed'"))
        conn.execute(text("UPDATE messages SET status = 'received' WHERE status = 'lost'"))
    migrations.upgrade("head", engine=engine)
    # Later revisions add their own (0012: a conversation's status and priority).
    assert _checks(engine) == EXPECTED | LATER
