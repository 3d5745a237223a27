"""Campaign batches, their recipients, and the per-sender send pacer."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from relaydesk.core.db import Base, BigId, UTCDateTime, state_type, utcnow


class BatchStatus(StrEnum):
    """A campaign's life: pending → processing ⇄ paused → completed | failed | canceled."""

    PENDING = "pending"
    PROCESSING = "processing"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class RecipientStatus(StrEnum):
    """One recipient: pending → claimed → queued (a message exists) | skipped | failed."""

    PENDING = "pending"
    CLAIMED = "claimed"  # a dispatcher is making its message
    QUEUED = "queued"
    SKIPPED = "skipped"
    FAILED = "failed"  # no message could be made


class Batch(Base):
    """One message to many recipients (document 000's "Multi SMS" batch)."""

    __tablename__ = "multi_sms_batches"
    __table_args__ = (Index("ix_multi_sms_batches_status", "status", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[BatchStatus] = mapped_column(state_type(BatchStatus, length=12, name="status"))
    sender: Mapped[str] = mapped_column(String(64))
    total: Mapped[int] = mapped_column(Integer)  # entries found in the pasted text
    valid: Mapped[int] = mapped_column(Integer)
    duplicates: Mapped[int] = mapped_column(Integer)
    invalid: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    segments_per_message: Mapped[int] = mapped_column(Integer)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)  # why it paused or failed
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    dispatcher_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dispatcher: Mapped[str | None] = mapped_column(String(80))  # relaydesk.core.owners.me()
    created_by: Mapped[str | None] = mapped_column(String(100))
    # The segment it was made from (None: a pasted list). Its recipients are the members
    # at that moment: the segment changing later changes nothing here.
    segment_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("segments.id", ondelete="SET NULL")
    )
    segment_name: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Recipient(Base):
    """One number of a batch; once claimed it points at the message it produced."""

    __tablename__ = "multi_sms_recipients"
    __table_args__ = (
        UniqueConstraint("batch_id", "number"),
        Index("ix_multi_sms_recipients_batch_status", "batch_id", "status", "id"),
        # A customer's campaigns (the contact profile).
        Index("ix_multi_sms_recipients_number", "number", "batch_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("multi_sms_batches.id", ondelete="CASCADE"))
    input: Mapped[str] = mapped_column(String(64))
    number: Mapped[str] = mapped_column(String(64))  # +48… or whatsapp:+48…
    status: Mapped[RecipientStatus] = mapped_column(
        state_type(RecipientStatus, length=10, name="status")
    )
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SendPacer(Base):
    """The next free send slot of one sender, shared by every worker (rate limiting)."""

    __tablename__ = "send_pacers"

    sender: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_at: Mapped[float] = mapped_column(Float)  # Unix time of the next free slot
