"""Uploaded documents; their bytes and extracted parts live in DATA_DIR/documents/<id>/."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from relaydesk.core.db import Base, BigId, UTCDateTime, utcnow


class KnowledgeDocument(Base):
    """One file given to the knowledge base."""

    __tablename__ = "knowledge_documents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    category: Mapped[str] = mapped_column(String(63))  # a news category's slug
    filename: Mapped[str] = mapped_column(String(255))  # as uploaded, made safe to show
    kind: Mapped[str] = mapped_column(String(10))  # pdf | docx | odt | xlsx | csv | txt | md | html
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    parts: Mapped[int] = mapped_column(Integer)  # pages, rows or sections with text
    characters: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
