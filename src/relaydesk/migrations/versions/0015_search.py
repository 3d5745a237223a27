"""Full-text search (issue 20): the search index of messages and contacts.

- search_messages (rowid = the message's id, text) and search_contacts (rowid = the
  contact's id, text) hold folded text (lower case, no diacritics) written by the
  indexer in the background. On SQLite they are FTS5 tables with the trigram tokenizer
  (any substring of three or more characters is found from the index); on PostgreSQL
  plain tables with a pg_trgm GIN index, which answers LIKE '%…%' the same way.
- search_progress: how far the indexer has come (per kind: an id and a change time).
- contacts and contact_profiles get an index on updated_at: the indexer, and each
  search of contacts, read what changed since the indexer's last pass.

The indexes start empty: the indexer fills them from the existing history after the
upgrade (`relaydesk search status` shows how far it is; searches cover what is not
indexed yet by reading it directly).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import relaydesk.core.db

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
INDEXES = ("search_messages", "search_contacts")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in INDEXES:
            op.execute(f"CREATE VIRTUAL TABLE {name} USING fts5(text, tokenize='trigram')")
    else:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for name in INDEXES:
            op.create_table(
                name,
                sa.Column("rowid", BIG_ID, autoincrement=False, nullable=False),
                sa.Column("text", sa.Text(), nullable=False),
                sa.PrimaryKeyConstraint("rowid", name=op.f(f"pk_{name}")),
            )
            op.execute(f"CREATE INDEX ix_{name}_text ON {name} USING gin (text gin_trgm_ops)")
    op.create_table(
        "search_progress",
        sa.Column("name", sa.String(length=20), nullable=False),
        sa.Column("position", BIG_ID, nullable=False),
        sa.Column("changed_at", relaydesk.core.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_search_progress")),
    )
    op.create_index("ix_contacts_updated_at", "contacts", ["updated_at"])
    op.create_index("ix_contact_profiles_updated_at", "contact_profiles", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_contact_profiles_updated_at", table_name="contact_profiles")
    op.drop_index("ix_contacts_updated_at", table_name="contacts")
    op.drop_table("search_progress")
    for name in INDEXES:
        op.execute(f"DROP TABLE {name}")
