"""A version of the settings (settings_version), bumped by every change.

Automatic answers read the rules, the AI and the auto-reply settings several times
each; with the version, a process keeps the rows it read and checks one number instead
of reading them again, and still sees another process's change at its next transaction.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 17:30:00
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "settings_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settings_version")),
    )
    # A random start: two databases (a test's, a copy) never share a version by chance.
    op.bulk_insert(table, [{"id": 1, "version": secrets.randbelow(2**40)}])


def downgrade() -> None:
    op.drop_table("settings_version")
