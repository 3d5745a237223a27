"""Tools an assistant or the global AI may call (issue 23): the business's own HTTP APIs.

- automation_runs.tool_calls: what the model called for the answer (JSON);
- assistant_tools: owner ("ai" or "assistant:<id>"), name (unique per owner), the
  description the model reads, method and URL, the parameters' JSON Schema, an optional
  secret header (its value encrypted), whether the customer must confirm first, enabled;
  a built-in tool (`builtin`) has no method or URL;
- tool_confirmations: a `confirm` tool's call waiting for the customer's yes.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 08:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import relaydesk.core.db

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")


def _when(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, relaydesk.core.db.UTCDateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "assistant_tools",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("owner", sa.String(length=40), nullable=False),
        sa.Column("assistant_id", BIG_ID, nullable=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("builtin", sa.String(length=30), nullable=True),
        sa.Column("method", sa.String(length=6), nullable=True),
        sa.Column("url", sa.String(length=2000), nullable=True),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("secret_header_name", sa.String(length=100), nullable=True),
        sa.Column("secret_header_value", sa.Text(), nullable=True),
        sa.Column("confirm", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        sa.ForeignKeyConstraint(
            ["assistant_id"],
            ["assistants.id"],
            name=op.f("fk_assistant_tools_assistant_id_assistants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assistant_tools")),
        sa.UniqueConstraint("owner", "name", name="uq_assistant_tools_owner_name"),
    )
    with op.batch_alter_table("automation_runs") as batch:
        batch.add_column(sa.Column("tool_calls", sa.JSON(), nullable=True))
    op.create_table(
        "tool_confirmations",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("tool_id", BIG_ID, nullable=False),
        sa.Column("conversation_id", BIG_ID, nullable=False),
        sa.Column("run_id", BIG_ID, nullable=True),
        sa.Column("arguments", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("confirmed_run_id", sa.BigInteger(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        _when("created_at"),
        _when("expires_at"),
        sa.Column("decided_at", relaydesk.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tool_id"],
            ["assistant_tools.id"],
            name=op.f("fk_tool_confirmations_tool_id_assistant_tools"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_tool_confirmations_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["automation_runs.id"],
            name=op.f("fk_tool_confirmations_run_id_automation_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tool_confirmations")),
        sa.UniqueConstraint("key", name=op.f("uq_tool_confirmations_key")),
    )
    op.create_index(
        "ix_tool_confirmations_conversation_id_state",
        "tool_confirmations",
        ["conversation_id", "state"],
    )


def downgrade() -> None:
    op.drop_index("ix_tool_confirmations_conversation_id_state", table_name="tool_confirmations")
    op.drop_table("tool_confirmations")
    with op.batch_alter_table("automation_runs") as batch:
        batch.drop_column("tool_calls")
    op.drop_table("assistant_tools")
