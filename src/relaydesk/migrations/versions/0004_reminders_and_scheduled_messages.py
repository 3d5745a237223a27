"""reminders and their runs; scheduled single messages (messages.scheduled_at)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 17:30:23.645516
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import relaydesk.core.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
SCHEDULED = sa.text("status = 'scheduled'")


def upgrade() -> None:
    op.create_table(
        "reminders",
        sa.Column("id", ID, nullable=False),
        sa.Column("to_addr", sa.String(length=64), nullable=False),
        sa.Column("participant", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("interval_minutes", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("start_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("next_run_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("run_count", sa.Integer(), nullable=False),
        sa.Column("last_run_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_outcome", sa.String(length=10), nullable=True),
        sa.Column("last_reason", sa.String(length=32), nullable=True),
        sa.Column("last_detail", sa.Text(), nullable=True),
        sa.Column("last_message_id", ID, nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["last_message_id"],
            ["messages.id"],
            name=op.f("fk_reminders_last_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminders")),
    )
    with op.batch_alter_table("reminders", schema=None) as batch_op:
        batch_op.create_index("ix_reminders_due", ["enabled", "next_run_at"], unique=False)

    op.create_table(
        "reminder_runs",
        sa.Column("id", ID, nullable=False),
        sa.Column("reminder_id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("due_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ran_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("missed_runs", sa.Integer(), nullable=False),
        sa.Column("message_id", ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_reminder_runs_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["reminder_id"],
            ["reminders.id"],
            name=op.f("fk_reminder_runs_reminder_id_reminders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminder_runs")),
        sa.UniqueConstraint("reminder_id", "seq", name=op.f("uq_reminder_runs_reminder_id_seq")),
    )

    # Adding a nullable column and an index: no table rebuild, even on SQLite.
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scheduled_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            "ix_messages_scheduled",
            ["scheduled_at"],
            unique=False,
            sqlite_where=SCHEDULED,
            postgresql_where=SCHEDULED,
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_messages_scheduled", sqlite_where=SCHEDULED, postgresql_where=SCHEDULED
        )
        batch_op.drop_column("scheduled_at")

    op.drop_table("reminder_runs")
    with op.batch_alter_table("reminders", schema=None) as batch_op:
        batch_op.drop_index("ix_reminders_due")

    op.drop_table("reminders")
