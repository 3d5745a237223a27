"""Contacts: one row per customer address (E.164 number × channel), and their profiles."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from relaydesk.core.db import Base, BigId, UTCDateTime, state_type, utcnow


class Contact(Base):
    """A customer reachable on one channel; opt-out is tracked per channel like Twilio."""

    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("phone", "channel"),
        # What changed since: the search index reads changed contacts again.
        Index("ix_contacts_updated_at", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    phone: Mapped[str] = mapped_column(String(20))  # E.164
    channel: Mapped[str] = mapped_column(String(10))  # sms | whatsapp
    profile_name: Mapped[str | None] = mapped_column(String(200))
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opt_out_reason: Mapped[str | None] = mapped_column(String(200))
    opted_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AttributeKind(StrEnum):
    """The type of a custom attribute's values."""

    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    LIST = "list"  # one of the definition's options


class ContactProfile(Base):
    """What the team knows about a customer, whichever channels they use (one per number).

    `name` None: the name the customer gave (WhatsApp's ProfileName), if any.
    `attributes` maps an attribute's key to its value (str, number, "YYYY-MM-DD").
    """

    __tablename__ = "contact_profiles"
    __table_args__ = (Index("ix_contact_profiles_updated_at", "updated_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    participant: Mapped[str] = mapped_column(String(20), unique=True)  # E.164
    name: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ContactAttribute(Base):
    """A custom attribute an admin defines for every contact ("City", "Customer since")."""

    __tablename__ = "contact_attributes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)  # "city": {{contact.city}}
    name: Mapped[str] = mapped_column(String(60))
    kind: Mapped[AttributeKind] = mapped_column(state_type(AttributeKind, length=10, name="kind"))
    options: Mapped[list[str]] = mapped_column(JSON, default=list)  # a list's choices
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
