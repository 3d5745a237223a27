"""Contact segments (issue 20): saved contact filters that a campaign can be sent to.

- segments: a name and its rules (JSON: labels, attributes, channel, opted-in, last
  inbound within N days, conversation states), who made it, when;
- multi_sms_batches.segment_id / segment_name: the segment a campaign was made from (its
  recipients are the members at that moment; the name stays if the segment is deleted);
- multi_sms_recipients.number widens to 64 characters: a WhatsApp recipient is written
  "whatsapp:+48600100200" (21), which PostgreSQL refused in 20.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import relaydesk.core.db

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")


def _when(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, relaydesk.core.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        _when("created_at"),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
    )
    with op.batch_alter_table("multi_sms_batches") as batch:
        batch.add_column(sa.Column("segment_id", BIG_ID, nullable=True))
        batch.add_column(sa.Column("segment_name", sa.String(length=100), nullable=True))
        batch.create_foreign_key(
            op.f("fk_multi_sms_batches_segment_id_segments"),
            "segments",
            ["segment_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("multi_sms_recipients") as batch:
        batch.alter_column("number", existing_type=sa.String(length=20), type_=sa.String(length=64))


def downgrade() -> None:
    with op.batch_alter_table("multi_sms_recipients") as batch:
        batch.alter_column("number", existing_type=sa.String(length=64), type_=sa.String(length=20))
    with op.batch_alter_table("multi_sms_batches") as batch:
        batch.drop_constraint(op.f("fk_multi_sms_batches_segment_id_segments"), type_="foreignkey")
        batch.drop_column("segment_name")
        batch.drop_column("segment_id")
    op.drop_table("segments")
