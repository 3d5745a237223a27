"""The team inbox's third part: contact profiles, business hours, round-robin assignment.

- contact_profiles: what the team knows about a customer (one row per number): an edited
  name, a free-text note, custom attribute values;
- contact_attributes: the attributes an admin defines (key, name, type, list options);
- conversations.ooo_period_start: the closed period whose out-of-office answer this
  conversation got (sent once per conversation per closed period);
- users.last_assigned_at: whose turn it is in round-robin assignment (who is online comes
  from the panel sessions);
- automation_runs.outcome learns "out_of_office";
- multi_sms_recipients gets an index by number (a customer's campaigns, on their profile).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 00:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import relaydesk.core.db

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
KINDS = ("text", "number", "date", "list")
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
OUTCOMES = (*RUN_OUTCOMES, "out_of_office")  # automation_runs.outcome from this revision on


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _when(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, relaydesk.core.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "contact_profiles",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("participant", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=True),
        _when("created_at"),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_profiles")),
        sa.UniqueConstraint("participant", name=op.f("uq_contact_profiles_participant")),
    )
    op.create_table(
        "contact_attributes",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        _when("created_at"),
        sa.CheckConstraint(_in("kind", KINDS), name=op.f("ck_contact_attributes_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_attributes")),
        sa.UniqueConstraint("key", name=op.f("uq_contact_attributes_key")),
    )
    op.create_index(
        "ix_multi_sms_recipients_number", "multi_sms_recipients", ["number", "batch_id"]
    )
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(_when("ooo_period_start", nullable=True))
    with op.batch_alter_table("users") as batch:
        batch.add_column(_when("last_assigned_at", nullable=True))
    with op.batch_alter_table("automation_runs") as batch:
        batch.drop_constraint(op.f("ck_automation_runs_outcome"), type_="check")
        batch.create_check_constraint(op.f("ck_automation_runs_outcome"), _in("outcome", OUTCOMES))


def downgrade() -> None:
    with op.batch_alter_table("automation_runs") as batch:
        batch.drop_constraint(op.f("ck_automation_runs_outcome"), type_="check")
        batch.create_check_constraint(
            op.f("ck_automation_runs_outcome"), _in("outcome", RUN_OUTCOMES)
        )
    with op.batch_alter_table("users") as batch:
        batch.drop_column("last_assigned_at")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("ooo_period_start")
    op.drop_index("ix_multi_sms_recipients_number", table_name="multi_sms_recipients")
    op.drop_table("contact_attributes")
    op.drop_table("contact_profiles")
