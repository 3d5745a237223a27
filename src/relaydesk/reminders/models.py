"""Reminders and the history of their runs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column

from relaydesk.core.db import Base, BigId, UTCDateTime, state_type, utcnow


class ReminderOutcome(StrEnum):
    """A run stored its message, or sent nothing (and says why)."""

    SENT = "sent"
    SKIPPED = "skipped"


class Reminder(Base):
    """A message sent to one number every `interval_minutes`, from `next_run_at` on.

    `next_run_at` is the queue's truth: a run claims its slot by moving it forward with a
    conditional UPDATE (on `run_count`) in the transaction that stores the message.
    """

    __tablename__ = "reminders"
    __table_args__ = (Index("ix_reminders_due", "enabled", "next_run_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    to_addr: Mapped[str] = mapped_column(String(64))  # as Twilio writes it (whatsapp:+48…)
    participant: Mapped[str] = mapped_column(String(20))  # E.164
    channel: Mapped[str] = mapped_column(String(10))  # sms | whatsapp
    body: Mapped[str] = mapped_column(Text)
    interval_minutes: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime)
    run_count: Mapped[int] = mapped_column(Integer, default=0)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_outcome: Mapped[ReminderOutcome | None] = mapped_column(
        state_type(ReminderOutcome, length=10, name="last_outcome")
    )
    last_reason: Mapped[str | None] = mapped_column(String(32))
    last_detail: Mapped[str | None] = mapped_column(Text)
    last_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL")
    )
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def status(self) -> Literal["active", "paused"]:
        """The API's word for `enabled`: active, or paused."""
        return "active" if self.enabled else "paused"


class ReminderRun(Base):
    """One run of a reminder: the message it stored, or why it sent nothing."""

    __tablename__ = "reminder_runs"
    # `seq` is the reminder's run number: a second run for one slot cannot be stored (and
    # the history reads newest first along this index).
    __table_args__ = (UniqueConstraint("reminder_id", "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reminder_id: Mapped[int] = mapped_column(ForeignKey("reminders.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ran_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[ReminderOutcome] = mapped_column(
        state_type(ReminderOutcome, length=10, name="outcome")
    )
    reason: Mapped[str | None] = mapped_column(String(32))  # opted_out, whatsapp_window_closed…
    detail: Mapped[str | None] = mapped_column(Text)
    # Slots that passed while nothing ran (downtime): caught up by this one run.
    missed_runs: Mapped[int] = mapped_column(Integer, default=0)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
