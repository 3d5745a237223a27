"""Who holds a claim (a dead process's claims are taken over at once), and when to ask
Twilio for a message's status that never became final.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 07:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import relaydesk.core.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=80), nullable=True))
        batch.add_column(
            sa.Column(
                "status_check_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=True
            )
        )
    op.create_index(
        "ix_messages_status_check",
        "messages",
        ["status_check_at"],
        unique=False,
        sqlite_where=sa.text("status_check_at IS NOT NULL"),
        postgresql_where=sa.text("status_check_at IS NOT NULL"),
    )
    with op.batch_alter_table("multi_sms_batches") as batch:
        batch.add_column(sa.Column("dispatcher", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("multi_sms_batches") as batch:
        batch.drop_column("dispatcher")
    op.drop_index("ix_messages_status_check", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("status_check_at")
        batch.drop_column("claimed_by")
