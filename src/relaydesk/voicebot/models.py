"""Voice-bot conversations synced from ElevenLabs, their sync runs and monthly archives."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from relaydesk.core.db import Base, BigId, UTCDateTime, state_type, utcnow


class SyncStatus(StrEnum):
    """A sync run: running → done | failed | interrupted (an interrupted one resumes)."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


def _day_of_start(context: Any) -> str:
    start = context.get_current_parameters()["start_time"]
    return str(start.astimezone(UTC).strftime("%Y-%m-%d"))


KPI_COLUMNS = (
    "call_successful",
    "direction",
    "duration_secs",
    "agent_messages",
    "cost",
    "rating",
    "likes",
    "dislikes",
    "has_error",
    "status",
    "transferred",
    "dropout",
)


class VoiceConversation(Base):
    """One ElevenLabs conversation (a call), flattened for SQL KPIs; `details` is the raw answer.

    Every KPI is computed in SQL from these columns, so each one is filled at sync time
    from the list summary and the conversation's details (see voicebot/extract.py).
    """

    __tablename__ = "voicebot_conversations"
    __table_args__ = (
        # Covering indexes for the KPIs (a period, or one agent's): every column the KPI
        # query reads is in the index, in day order, so the per-day sums stream from the
        # index without sorting and never read the rows with their details.
        Index("ix_voicebot_conversations_kpis", "day", "start_time", *KPI_COLUMNS),
        Index(
            "ix_voicebot_conversations_agent_kpis", "agent_id", "day", "start_time", *KPI_COLUMNS
        ),
        Index("ix_voicebot_conversations_start", "start_time"),
        Index("ix_voicebot_conversations_agent_start", "agent_id", "start_time"),
        Index("ix_voicebot_conversations_customer", "customer_number"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(64), unique=True)
    agent_id: Mapped[str] = mapped_column(String(64))
    agent_name: Mapped[str | None] = mapped_column(String(200))
    # ElevenLabs' word as sent (initiated, in-progress, processing, done, failed…): the
    # vendor's, not a state machine of ours, so a new value is stored rather than refused.
    status: Mapped[str] = mapped_column(String(16))
    start_time: Mapped[datetime] = mapped_column(UTCDateTime)  # call start, UTC
    # start_time's UTC date, "YYYY-MM-DD" (filled from start_time when not given)
    day: Mapped[str] = mapped_column(String(10), default=_day_of_start)
    duration_secs: Mapped[int] = mapped_column(Integer, default=0)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    agent_messages: Mapped[int] = mapped_column(Integer, default=0)  # transcript turns, role agent
    direction: Mapped[str | None] = mapped_column(String(8))  # inbound | outbound
    call_successful: Mapped[str] = mapped_column(String(8), default="unknown")
    termination_reason: Mapped[str | None] = mapped_column(Text)
    cost: Mapped[float | None] = mapped_column(Float)  # metadata.cost (credits)
    rating: Mapped[float | None] = mapped_column(Float)  # 1–5 where the API gives one
    likes: Mapped[int] = mapped_column(Integer, default=0)
    dislikes: Mapped[int] = mapped_column(Integer, default=0)
    has_error: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    transferred: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    dropout: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    customer_number: Mapped[str | None] = mapped_column(String(20))  # E.164
    agent_number: Mapped[str | None] = mapped_column(String(20))
    # phone_call | dynamic_variables | metadata_body | None (no phone data)
    phone_source: Mapped[str | None] = mapped_column(String(24))
    title: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # What the list said when the details were last fetched: a change re-fetches them.
    list_fingerprint: Mapped[str | None] = mapped_column(String(64))
    details_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class VoiceEvaluation(Base):
    """One evaluation criterion's result for one conversation (pass rates in SQL)."""

    __tablename__ = "voicebot_evaluations"
    __table_args__ = (
        UniqueConstraint("conversation_pk", "criterion"),
        # A period's pass rates: one index range per criterion and result (no join to
        # the calls, no sort); the criteria themselves are found by skipping along it.
        Index("ix_voicebot_evaluations_period", "criterion", "result", "start_time", "agent_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_pk: Mapped[int] = mapped_column(
        ForeignKey("voicebot_conversations.id", ondelete="CASCADE")
    )
    # The call's start and agent, copied from it so a period's pass rates need no join.
    start_time: Mapped[datetime] = mapped_column(UTCDateTime)
    agent_id: Mapped[str] = mapped_column(String(64))
    criterion: Mapped[str] = mapped_column(String(100))
    result: Mapped[str] = mapped_column(String(16))  # success | failure | unknown


class VoiceSyncRun(Base):
    """One sync: what was asked, how far it got, and how it ended (the sync log)."""

    __tablename__ = "voicebot_sync_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    trigger: Mapped[str] = mapped_column(String(16))  # manual | daily | refetch
    status: Mapped[SyncStatus] = mapped_column(state_type(SyncStatus, length=16, name="status"))
    range_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    range_to: Mapped[datetime | None] = mapped_column(UTCDateTime)
    agent_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Where listing got to, per agent ({agent_id: next_cursor}): an interrupted run resumes.
    cursors: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    listed: Mapped[int] = mapped_column(Integer, default=0)
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class VoiceArchive(Base):
    """A month's conversations as a CSV file under DATA_DIR/voicebot/archives."""

    __tablename__ = "voicebot_archives"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    month: Mapped[str] = mapped_column(String(7), unique=True)  # YYYY-MM
    filename: Mapped[str] = mapped_column(String(100))
    rows: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(16))  # auto | manual
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def download_url(self) -> str:
        """Where the API serves the file."""
        return f"/api/voicebot/archives/{self.id}/download"
