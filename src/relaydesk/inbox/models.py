"""Notes, mentions and canned answers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from relaydesk.core.db import Base, BigId, UTCDateTime, utcnow


class ConversationNote(Base):
    """A private note in a conversation's thread: for the team, never sent to anyone."""

    __tablename__ = "conversation_notes"
    __table_args__ = (Index("ix_conversation_notes_participant_id", "participant", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    participant: Mapped[str] = mapped_column(String(20))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author: Mapped[str] = mapped_column(String(100))  # the name shown, kept as written
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Mention(Base):
    """A user named in a note (@Anna): their panel shows it until they read it."""

    __tablename__ = "mentions"
    __table_args__ = (
        Index("ix_mentions_user_id_read_at", "user_id", "read_at", "id"),
        Index("ix_mentions_note_id", "note_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("conversation_notes.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    participant: Mapped[str] = mapped_column(String(20))
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CannedResponse(Base):
    """A reusable answer: `/shortcut` in the composer, text with {{variables}}.

    `owner_id` None: shared with everyone (admins manage those); else one person's own.
    """

    __tablename__ = "canned_responses"
    __table_args__ = (Index("ix_canned_responses_owner_id_shortcut", "owner_id", "shortcut"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shortcut: Mapped[str] = mapped_column(String(30))
    body: Mapped[str] = mapped_column(Text)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
