"""Tools an assistant or the global AI may call (issue 23): the business's own HTTP APIs.

- automation_runs.tool_calls: what the model called for the answer (JSON);
- assistant_tools: owner ("ai" or "assistant:<id>"), name (unique per owner), the
  description the model reads, method and URL, the parameters' JSON Schema, an optional
  secret header (its value encrypted), whether the customer must confirm first, enabled.

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
        sa.Column("method", sa.String(length=6), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
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


def downgrade() -> None:
    with op.batch_alter_table("automation_runs") as batch:
        batch.drop_column("tool_calls")
    op.drop_table("assistant_tools")
