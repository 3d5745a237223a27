"""campaigns: Multi-SMS batches, recipients and the per-sender send pacer

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 17:25:42.359914
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import relaydesk.core.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "multi_sms_batches",
        sa.Column("id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("valid", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("invalid", sa.JSON(), nullable=False),
        sa.Column("segments_per_message", sa.Integer(), nullable=False),
        sa.Column("send_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("dispatcher_until", relaydesk.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.Column("created_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_multi_sms_batches")),
    )
    with op.batch_alter_table("multi_sms_batches", schema=None) as batch_op:
        batch_op.create_index("ix_multi_sms_batches_status", ["status", "id"], unique=False)

    op.create_table(
        "send_pacers",
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("sender", name=op.f("pk_send_pacers")),
    )
    op.create_table(
        "multi_sms_recipients",
        sa.Column("id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("batch_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("input", sa.String(length=64), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("claimed_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["multi_sms_batches.id"],
            name=op.f("fk_multi_sms_recipients_batch_id_multi_sms_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_multi_sms_recipients")),
        sa.UniqueConstraint(
            "batch_id", "number", name=op.f("uq_multi_sms_recipients_batch_id_number")
        ),
    )
    with op.batch_alter_table("multi_sms_recipients", schema=None) as batch_op:
        batch_op.create_index(
            "ix_multi_sms_recipients_batch_status", ["batch_id", "status", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("multi_sms_recipients", schema=None) as batch_op:
        batch_op.drop_index("ix_multi_sms_recipients_batch_status")

    op.drop_table("multi_sms_recipients")
    op.drop_table("send_pacers")
    with op.batch_alter_table("multi_sms_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_multi_sms_batches_status")

    op.drop_table("multi_sms_batches")
