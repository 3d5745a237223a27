"""jobs, news sources and digest recipients, knowledge grounding

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 19:49:11.976526
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import relaydesk.core.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_kind_status", ["kind", "status"], unique=False)

    op.create_table(
        "news_sources",
        sa.Column("id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("category", sa.String(length=63), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("created_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_news_sources")),
        sa.UniqueConstraint("category", "url", name=op.f("uq_news_sources_category_url")),
    )
    op.create_table(
        "news_recipients",
        sa.Column("id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("phone", sa.String(length=64), nullable=False),
        sa.Column("send_time", sa.String(length=5), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("active_since", relaydesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_sent_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_sent_on", sa.String(length=10), nullable=True),
        sa.Column("last_outcome", sa.String(length=10), nullable=True),
        sa.Column("last_detail", sa.Text(), nullable=True),
        sa.Column(
            "last_message_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True
        ),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["last_message_id"],
            ["messages.id"],
            name=op.f("fk_news_recipients_last_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_news_recipients")),
    )
    with op.batch_alter_table("news_recipients", schema=None) as batch_op:
        batch_op.create_index("ix_news_recipients_enabled", ["enabled"], unique=False)

    with op.batch_alter_table("assistants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("knowledge_index", sa.String(length=64), nullable=True))

    with op.batch_alter_table("automation_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("knowledge", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("automation_runs", schema=None) as batch_op:
        batch_op.drop_column("knowledge")

    with op.batch_alter_table("assistants", schema=None) as batch_op:
        batch_op.drop_column("knowledge_index")

    with op.batch_alter_table("news_recipients", schema=None) as batch_op:
        batch_op.drop_index("ix_news_recipients_enabled")

    op.drop_table("news_recipients")
    op.drop_table("news_sources")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_kind_status")

    op.drop_table("jobs")
