"""The team inbox's first part: a conversation's state, owner and priority, the events
that record each change, how far each user has read, and a name for each user.

Every existing conversation starts open, unassigned, without priority; the columns'
values are CHECKed like every state column (revision 0010). On SQLite the conversations
table is rebuilt (batch mode) to carry the constraints and the foreign key.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import relaydesk.core.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = ("open", "pending", "snoozed", "resolved")
PRIORITIES = ("none", "low", "medium", "high", "urgent")
BIG_ID = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("name", sa.String(length=100), nullable=True))
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(
            sa.Column("status", sa.String(length=10), nullable=False, server_default="open")
        )
        batch.add_column(
            sa.Column("snoozed_until", relaydesk.core.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("assignee_id", BIG_ID, nullable=True))
        batch.add_column(
            sa.Column("priority", sa.String(length=10), nullable=False, server_default="none")
        )
        batch.create_check_constraint(op.f("ck_conversations_status"), _in("status", STATUSES))
        batch.create_check_constraint(
            op.f("ck_conversations_priority"), _in("priority", PRIORITIES)
        )
        batch.create_foreign_key(
            op.f("fk_conversations_assignee_id_users"),
            "users",
            ["assignee_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index(
            "ix_conversations_status_recent", ["status", "last_message_at", "id"], unique=False
        )
        batch.create_index(
            "ix_conversations_assignee_recent",
            ["assignee_id", "last_message_at", "id"],
            unique=False,
        )
        batch.create_index("ix_conversations_snoozed_until", ["snoozed_until"], unique=False)
    op.create_table(
        "conversation_events",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("conversation_id", BIG_ID, nullable=False),
        sa.Column("participant", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("actor_id", BIG_ID, nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_events_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_conversation_events_actor_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_events")),
    )
    op.create_index(
        "ix_conversation_events_conversation_id_id",
        "conversation_events",
        ["conversation_id", "id"],
        unique=False,
    )
    op.create_index(
        "ix_conversation_events_participant_id",
        "conversation_events",
        ["participant", "id"],
        unique=False,
    )
    op.create_table(
        "conversation_reads",
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("conversation_id", BIG_ID, nullable=False),
        sa.Column("last_read_message_id", sa.BigInteger(), nullable=False),
        sa.Column("read_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_conversation_reads_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_reads_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "conversation_id", name=op.f("pk_conversation_reads")),
    )


def downgrade() -> None:
    op.drop_table("conversation_reads")
    op.drop_index("ix_conversation_events_participant_id", table_name="conversation_events")
    op.drop_index("ix_conversation_events_conversation_id_id", table_name="conversation_events")
    op.drop_table("conversation_events")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_index("ix_conversations_snoozed_until")
        batch.drop_index("ix_conversations_assignee_recent")
        batch.drop_index("ix_conversations_status_recent")
        batch.drop_constraint(op.f("fk_conversations_assignee_id_users"), type_="foreignkey")
        batch.drop_constraint(op.f("ck_conversations_priority"), type_="check")
        batch.drop_constraint(op.f("ck_conversations_status"), type_="check")
        batch.drop_column("priority")
        batch.drop_column("assignee_id")
        batch.drop_column("snoozed_until")
        batch.drop_column("status")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("name")
