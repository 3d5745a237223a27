"""The numbers that get a daily news digest.

The table keeps the name it had when the news module held it (`news_recipients`), so
moving the class here needed no migration.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text, true
from sqlalchemy.orm import Mapped, mapped_column

from relaydesk.core.db import Base, BigId, UTCDateTime, state_type, utcnow


class DigestOutcome(StrEnum):
    """The last digest of a recipient: sent, skipped (nothing to send, or refused) or failed."""

    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"


class NewsRecipient(Base):
    """A number that gets a digest once per local day at `send_time` in `timezone`.

    `last_sent_on` (the local date of the last digest) is the exactly-once guard: a
    digest claims its day with a conditional UPDATE in the transaction that stores it.
    """

    __tablename__ = "news_recipients"
    __table_args__ = (Index("ix_news_recipients_enabled", "enabled"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    phone: Mapped[str] = mapped_column(String(64))  # as Twilio writes it (whatsapp:+48…)
    send_time: Mapped[str] = mapped_column(String(5))  # HH:MM, local
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Warsaw")
    mode: Mapped[str] = mapped_column(String(20))  # all_categories | custom_prompt
    prompt: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
    active_since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sent_on: Mapped[str | None] = mapped_column(String(10))  # YYYY-MM-DD, local
    last_outcome: Mapped[DigestOutcome | None] = mapped_column(
        state_type(DigestOutcome, length=10, name="last_outcome")
    )
    last_detail: Mapped[str | None] = mapped_column(Text)
    last_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL")
    )
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
