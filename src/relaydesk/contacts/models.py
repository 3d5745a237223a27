"""Contacts: one row per customer address (E.164 number × channel)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from relaydesk.core.db import Base, BigId, UTCDateTime, utcnow


class Contact(Base):
    """A customer reachable on one channel; opt-out is tracked per channel like Twilio."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("phone", "channel"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    phone: Mapped[str] = mapped_column(String(20))  # E.164
    channel: Mapped[str] = mapped_column(String(10))  # sms | whatsapp
    profile_name: Mapped[str | None] = mapped_column(String(200))
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opt_out_reason: Mapped[str | None] = mapped_column(String(200))
    opted_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
