"""The team inbox's second part: private notes with mentions, labels, canned answers.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 22:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import relaydesk.core.db

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")


def _when(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, relaydesk.core.db.UTCDateTime(timezone=True), nullable=nullable)


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete=ondelete,
    )


def upgrade() -> None:
    op.create_table(
        "labels",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("key", sa.String(length=50), nullable=False),
        sa.Column("colour", sa.String(length=7), nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_labels")),
        sa.UniqueConstraint("key", name=op.f("uq_labels_key")),
    )
    op.create_table(
        "conversation_labels",
        sa.Column("conversation_id", BIG_ID, nullable=False),
        sa.Column("label_id", BIG_ID, nullable=False),
        _fk("conversation_labels", "conversation_id", "conversations", "CASCADE"),
        _fk("conversation_labels", "label_id", "labels", "CASCADE"),
        sa.PrimaryKeyConstraint("conversation_id", "label_id", name=op.f("pk_conversation_labels")),
    )
    op.create_index(
        "ix_conversation_labels_label_id", "conversation_labels", ["label_id", "conversation_id"]
    )
    op.create_table(
        "conversation_notes",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("conversation_id", BIG_ID, nullable=False),
        sa.Column("participant", sa.String(length=20), nullable=False),
        sa.Column("author_id", BIG_ID, nullable=True),
        sa.Column("author", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        _when("created_at"),
        _fk("conversation_notes", "conversation_id", "conversations", "CASCADE"),
        _fk("conversation_notes", "author_id", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_notes")),
    )
    op.create_index(
        "ix_conversation_notes_participant_id", "conversation_notes", ["participant", "id"]
    )
    op.create_table(
        "mentions",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("note_id", BIG_ID, nullable=False),
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("participant", sa.String(length=20), nullable=False),
        _when("read_at", nullable=True),
        _when("created_at"),
        _fk("mentions", "note_id", "conversation_notes", "CASCADE"),
        _fk("mentions", "user_id", "users", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mentions")),
    )
    op.create_index("ix_mentions_user_id_read_at", "mentions", ["user_id", "read_at", "id"])
    op.create_index("ix_mentions_note_id", "mentions", ["note_id"])
    op.create_table(
        "canned_responses",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("shortcut", sa.String(length=30), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("owner_id", BIG_ID, nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        _fk("canned_responses", "owner_id", "users", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_responses")),
    )
    op.create_index(
        "ix_canned_responses_owner_id_shortcut", "canned_responses", ["owner_id", "shortcut"]
    )


def downgrade() -> None:
    op.drop_index("ix_canned_responses_owner_id_shortcut", table_name="canned_responses")
    op.drop_table("canned_responses")
    op.drop_index("ix_mentions_note_id", table_name="mentions")
    op.drop_index("ix_mentions_user_id_read_at", table_name="mentions")
    op.drop_table("mentions")
    op.drop_index("ix_conversation_notes_participant_id", table_name="conversation_notes")
    op.drop_table("conversation_notes")
    op.drop_index("ix_conversation_labels_label_id", table_name="conversation_labels")
    op.drop_table("conversation_labels")
    op.drop_table("labels")
