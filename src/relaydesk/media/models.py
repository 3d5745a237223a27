"""Attachments of messages, and the files relaydesk publishes for Twilio to fetch."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from relaydesk.core.db import Base, BigId, UTCDateTime, state_type, utcnow


class AttachmentState(StrEnum):
    """pending → working → stored | refused | failed (or pending again to retry)."""

    PENDING = "pending"
    WORKING = "working"  # a download holds it
    STORED = "stored"
    REFUSED = "refused"  # over a limit, or a type we do not keep
    FAILED = "failed"  # the download gave up
    REMOTE = "remote"  # an outbound file at someone else's address, not copied


class Attachment(Base):
    """One file of a message: where it came from, whether we hold it, what it says.

    Inbound files start `pending` and are downloaded in the background; the file itself
    lives content-addressed under DATA_DIR/media by its SHA-256. `source_url` (a Twilio
    media URL) is never shown to anyone but the downloader, and never to a model.
    """

    __tablename__ = "attachments"
    __table_args__ = (
        UniqueConstraint("message_id", "position"),
        Index("ix_attachments_pending", "state", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    source_url: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(128), default="")
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[AttachmentState] = mapped_column(
        state_type(AttachmentState, length=12, name="state")
    )
    error: Mapped[str | None] = mapped_column(Text)
    transcript: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class MediaLink(Base):
    """A stored file published at an unguessable, expiring public address.

    Twilio fetches outbound media itself, without credentials, so voice replies and
    operators' uploads are served at PUBLIC_BASE_URL/m/<token> until `expires_at`.
    """

    __tablename__ = "media_links"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str | None] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(16))  # upload | voice_reply
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
