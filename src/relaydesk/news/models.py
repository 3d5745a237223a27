"""News sources, per category (the digest recipients are digests/models.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from relaydesk.core.db import Base, BigId, UTCDateTime, utcnow


class NewsSource(Base):
    """A feed or section page scraped into its category's files."""

    __tablename__ = "news_sources"
    __table_args__ = (UniqueConstraint("category", "url"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    category: Mapped[str] = mapped_column(String(63))  # the slug: file names
    label: Mapped[str] = mapped_column(String(100), default="")  # as the person wrote it
    url: Mapped[str] = mapped_column(String(2048))
    kind: Mapped[str] = mapped_column(String(10))  # feed | page
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
