"""Which process holds an automation run's claim (automation_runs.claimed_by).

A run claimed by a process that died (SIGKILL, a crash) waited for its lease (three
minutes by default) before the sweep gave it to another worker; with the owner on the
row, the sweep takes over the runs of processes that are provably gone at once, as it
does for outbound messages (`messages.claimed_by`).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("automation_runs") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("automation_runs") as batch:
        batch.drop_column("claimed_by")
