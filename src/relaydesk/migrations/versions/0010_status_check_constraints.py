"""Every state machine's column takes only its known values (a CHECK constraint each).

The values are those of the StrEnums in the domains' models.py as of this revision,
copied here so that the migration stays what it was when the enums change later.

A row holding a value outside its set stops the upgrade before anything changes, with
the rows listed: such a value came from SQL written by hand or from a bug, and which
state it should have been is a person's call (mapping it to, say, "failed" would
rewrite history the panel shows). None are expected: the code never writes one.

On SQLite each table is rebuilt (batch mode) to carry its constraint; relaydesk's
`migrations.upgrade` switches foreign keys off around it so that dropping the old
table does not cascade into the tables that refer to it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE_STATUSES = (
    "pending",
    "scheduled",
    "accepted",
    "queued",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "read",
    "canceled",
    "receiving",
    "received",
)
RUN_OUTCOMES = (
    "keyword_reply",
    "ai",
    "assistant",
    "auto_reply",
    "keyword",
    "opt_out",
    "opted_out",
    "bot_off",
    "paused",
    "merged",
    "loop_guard",
    "retro",
    "no_mode",
    "session_ended",
    "failed",
    "waiting",
)

# table → column → the values it may hold (NULL stays allowed where the column allows it).
CHECKS: dict[str, dict[str, tuple[str, ...]]] = {
    "messages": {
        "status": MESSAGE_STATUSES,
        "submit_state": ("in_flight", "not_sent", "submitted", "refused"),
    },
    "multi_sms_batches": {
        "status": ("pending", "processing", "paused", "completed", "failed", "canceled"),
    },
    "multi_sms_recipients": {
        "status": ("pending", "claimed", "queued", "skipped", "failed"),
    },
    "jobs": {"status": ("queued", "running", "done", "failed")},
    "attachments": {
        "state": ("pending", "working", "stored", "refused", "failed", "remote"),
    },
    "automation_runs": {
        "state": ("pending", "working", "done"),
        "outcome": RUN_OUTCOMES,
    },
    "reminders": {"last_outcome": ("sent", "skipped")},
    "reminder_runs": {"outcome": ("sent", "skipped")},
    "news_recipients": {"last_outcome": ("sent", "skipped", "failed")},
    "voicebot_sync_runs": {"status": ("running", "done", "failed", "interrupted")},
}


def constraint_name(table: str, column: str) -> str:
    """The name core.db's naming convention gives the column's CHECK (ck_<table>_<column>)."""
    return f"ck_{table}_{column}"


def condition(column: str, values: tuple[str, ...]) -> str:
    """The CHECK's SQL, as SQLAlchemy's Enum writes it."""
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


def unknown_values(conn: sa.Connection) -> list[str]:
    """Every value outside its set, with its table, column and number of rows."""
    found = []
    for table, columns in CHECKS.items():
        for column, values in columns.items():
            col: sa.ColumnClause[str] = sa.column(column)
            rows = conn.execute(
                sa.select(col, sa.func.count())
                .select_from(sa.table(table, col))
                .where(col.not_in(values))
                .group_by(col)
                .order_by(col)
            ).all()
            found += [f"{table}.{column} = {value!r}: {count} row(s)" for value, count in rows]
    return found


def upgrade() -> None:
    unknown = unknown_values(op.get_bind())
    if unknown:
        raise RuntimeError(
            "The status CHECK constraints cannot be added: these rows hold a value "
            "relaydesk does not know.\n  "
            + "\n  ".join(unknown)
            + "\nSet each to a known value (or delete the rows) and migrate again; "
            "nothing was changed."
        )
    for table, columns in CHECKS.items():
        with op.batch_alter_table(table) as batch:
            for column, values in columns.items():
                batch.create_check_constraint(
                    op.f(constraint_name(table, column)), condition(column, values)
                )


def downgrade() -> None:
    for table, columns in reversed(CHECKS.items()):
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_constraint(op.f(constraint_name(table, column)), type_="check")
