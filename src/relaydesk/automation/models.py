"""The automation pipeline's runs, the assistants, number bindings, sessions and usage."""

from __future__ import annotations

from datetime import datetime
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
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from relaydesk.core.db import Base, BigId, UTCDateTime, state_type, utcnow


class RunState(StrEnum):
    """pending → working (claimed under a token and a lease) → done."""

    PENDING = "pending"
    WORKING = "working"
    DONE = "done"


class RunOutcome(StrEnum):
    """What the pipeline did about an inbound message (a run's outcome)."""

    # Answered.
    KEYWORD_REPLY = "keyword_reply"  # HELP / START text
    AI = "ai"
    ASSISTANT = "assistant"
    AUTO_REPLY = "auto_reply"
    # Outside business hours, once per closed period: a later message of the period has
    # this outcome with no reply, and a detail saying the answer was sent already.
    OUT_OF_OFFICE = "out_of_office"
    # Not answered, and why.
    KEYWORD = "keyword"  # START / HELP that Twilio answers, or with no text configured
    OPT_OUT = "opt_out"  # the message was an unsubscribe (STOP)
    OPTED_OUT = "opted_out"  # the customer had unsubscribed
    BOT_OFF = "bot_off"
    PAUSED = "paused"  # a person is answering
    MERGED = "merged"  # answered together with a later message of the burst
    LOOP_GUARD = "loop_guard"
    RETRO = "retro"  # received before the answering mode was switched on
    NO_MODE = "no_mode"
    SESSION_ENDED = "session_ended"  # an end keyword closed the assistant session
    FAILED = "failed"
    # Not an end: the run waits for the message's files (never stored).
    WAITING = "waiting"


class AutomationRun(Base):
    """One decision per inbound message: what the bot did about it and why.

    The unique inbound message id is what makes "exactly one answer" hold: a repeated
    job finds the run done, and an expired claim (a worker died) is taken over only
    under a new claim token, so a late finisher cannot send a second answer.
    """

    __tablename__ = "automation_runs"
    __table_args__ = (
        Index("ix_automation_runs_conversation_id", "conversation_id", "id"),
        Index("ix_automation_runs_state_created", "state", "created_at"),
        Index("ix_automation_runs_participant", "participant", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    inbound_message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), unique=True
    )
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    participant: Mapped[str] = mapped_column(String(20))
    state: Mapped[RunState] = mapped_column(state_type(RunState, length=10, name="state"))
    outcome: Mapped[RunOutcome | None] = mapped_column(
        state_type(RunOutcome, length=20, name="outcome")
    )
    detail: Mapped[str | None] = mapped_column(Text)
    reply_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL")
    )
    claim_token: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(80))  # core.owners: who holds it
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider: Mapped[str | None] = mapped_column(String(20))
    model: Mapped[str | None] = mapped_column(String(100))
    # The knowledge passages the answer was grounded on: [{title, url, category, score}].
    knowledge: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # The tools the model called for the answer: [{id, name, arguments, status,
    # latency_ms, excerpt, error}] (see automation.acting).
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Assistant(Base):
    """A persona answering the customers of the numbers bound to it."""

    __tablename__ = "assistants"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    first_message: Mapped[str] = mapped_column(Text, default="")
    system_prompt: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str | None] = mapped_column(String(100))
    temperature: Mapped[float | None] = mapped_column(Float)
    session_timeout_minutes: Mapped[int] = mapped_column(Integer, default=30)
    end_keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    knowledge_index: Mapped[str | None] = mapped_column(String(64))  # ground answers on it
    voice_replies: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Read-only: bindings are written as PhoneNumber rows. Loaded when first read (a list
    # of assistants loads them all at once with selectinload).
    bindings: Mapped[list[PhoneNumber]] = relationship(viewonly=True, order_by="PhoneNumber.number")

    @property
    def numbers(self) -> list[str]:
        """The numbers bound to the assistant, in order."""
        return [binding.number for binding in self.bindings]


class PhoneNumber(Base):
    """One of our Twilio numbers and the assistant answering on it (E.164, any channel)."""

    __tablename__ = "phone_numbers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    assistant_id: Mapped[int] = mapped_column(ForeignKey("assistants.id", ondelete="CASCADE"))
    bound_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    assistant: Mapped[Assistant] = relationship(viewonly=True)

    @property
    def assistant_name(self) -> str:
        """The name of the assistant answering on the number."""
        return self.assistant.name


class AssistantSession(Base):
    """A stretch of conversation with an assistant; ends on a keyword or after silence."""

    __tablename__ = "assistant_sessions"
    __table_args__ = (Index("ix_assistant_sessions_conversation", "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    assistant_id: Mapped[int] = mapped_column(ForeignKey("assistants.id", ondelete="CASCADE"))
    first_message_id: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(20))


class ConversationSummary(Base):
    """The model's running summary of a conversation's older messages."""

    __tablename__ = "conversation_summaries"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    summary: Mapped[str] = mapped_column(Text)
    covers_until_id: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class LLMUsage(Base):
    """Running token totals per provider and model."""

    __tablename__ = "llm_usage"

    provider: Mapped[str] = mapped_column(String(20), primary_key=True)
    model: Mapped[str] = mapped_column(String(100), primary_key=True)
    calls: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AssistantTool(Base):
    """An HTTP API of the business that an assistant (or the global AI) may call.

    `owner` is "ai" for the global AI or "assistant:<id>" for an assistant: one name per
    owner. The secret header's value is stored encrypted and never shown again.
    """

    __tablename__ = "assistant_tools"
    __table_args__ = (UniqueConstraint("owner", "name", name="uq_assistant_tools_owner_name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    assistant_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("assistants.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    # A tool relaydesk itself carries out (hand_over, schedule_message, search_knowledge):
    # no method or URL, its parameters are relaydesk's (automation.builtins).
    builtin: Mapped[str | None] = mapped_column(String(30))
    method: Mapped[str | None] = mapped_column(String(6))  # GET | POST
    url: Mapped[str | None] = mapped_column(String(2000))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    secret_header_name: Mapped[str | None] = mapped_column(String(100))
    secret_header_value: Mapped[str | None] = mapped_column(Text)  # encrypted
    confirm: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ConfirmationState(StrEnum):
    """pending (asked) → calling → done, or declined / expired / superseded."""

    PENDING = "pending"
    CALLING = "calling"
    DONE = "done"
    DECLINED = "declined"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"


class ToolConfirmation(Base):
    """A call of a `confirm` tool the model asked for, waiting for the customer's yes.

    `key` is the asking call's idempotency key (one row however often the run is
    retried); the call itself is made by the run of the customer's next message that
    agrees (`confirmed_run_id`), with an idempotency key of its own derived from this
    row, and its record kept in `result`.
    """

    __tablename__ = "tool_confirmations"
    __table_args__ = (
        Index("ix_tool_confirmations_conversation_id_state", "conversation_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    tool_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("assistant_tools.id", ondelete="CASCADE")
    )
    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    run_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("automation_runs.id", ondelete="SET NULL")
    )
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(12))  # a ConfirmationState
    confirmed_run_id: Mapped[int | None] = mapped_column(BigInteger)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
