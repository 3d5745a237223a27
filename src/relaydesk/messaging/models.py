"""Conversations, messages, delivery events and the message counters."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from relaydesk.core.db import Base, BigId, UTCDateTime, state_type, utcnow

# Messages sent in bulk (a campaign, a digest): their deliveries and retries run on the
# bulk queue, behind no customer's answer.
BULK_SOURCES = frozenset({"campaign", "news"})


class MessageStatus(StrEnum):
    """Where a message is: relaydesk's own states first, then Twilio's statuses."""

    PENDING = "pending"  # stored, not yet handed to Twilio
    SCHEDULED = "scheduled"  # waiting in relaydesk for its send time
    ACCEPTED = "accepted"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    READ = "read"
    CANCELED = "canceled"
    RECEIVING = "receiving"
    RECEIVED = "received"


class SubmitState(StrEnum):
    """What became of the call that hands a message to Twilio."""

    IN_FLIGHT = "in_flight"  # Twilio may have it: reconcile before retrying
    NOT_SENT = "not_sent"
    SUBMITTED = "submitted"
    REFUSED = "refused"


class ConversationStatus(StrEnum):
    """Where a conversation is in the team's work.

    open → pending (waiting for the customer) | snoozed (until a time) | resolved; a
    customer's message opens a resolved or snoozed conversation again, a snooze ends by
    itself at its time.
    """

    OPEN = "open"
    PENDING = "pending"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


class Priority(StrEnum):
    """How urgent a conversation is, as its team sees it."""

    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


class Conversation(Base):
    """One thread per contact × our address; keeps the inbox list cheap to read."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("contact_id", "our_address"),
        Index("ix_conversations_recent", "last_message_at", "id"),
        Index("ix_conversations_participant", "participant"),
        Index("ix_conversations_status_recent", "status", "last_message_at", "id"),
        Index("ix_conversations_assignee_recent", "assignee_id", "last_message_at", "id"),
        Index("ix_conversations_snoozed_until", "snoozed_until"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    participant: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(10))
    our_address: Mapped[str] = mapped_column(String(64))
    last_message_id: Mapped[int | None] = mapped_column(BigInteger)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_body: Mapped[str | None] = mapped_column(String(200))
    last_direction: Mapped[str | None] = mapped_column(String(8))
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    unread_count: Mapped[int] = mapped_column(Integer, default=0)
    # When a person last wrote to the customer here (automation steps back for a while).
    human_replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The per-conversation "bot on/off" switch.
    automation_enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
    # The team's work on it (messaging.states changes these and records each change).
    status: Mapped[ConversationStatus] = mapped_column(
        state_type(ConversationStatus, length=10, name="status"),
        default=ConversationStatus.OPEN,
        server_default=ConversationStatus.OPEN.value,
    )
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    priority: Mapped[Priority] = mapped_column(
        state_type(Priority, length=10, name="priority"),
        default=Priority.NONE,
        server_default=Priority.NONE.value,
    )
    # The closed period (its start) whose out-of-office answer this conversation got.
    ooo_period_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ConversationEvent(Base):
    """A change to a conversation's state, owner or priority, shown in its thread.

    `kind`: assigned | status | priority | reopened | snooze_ended | labels. `actor_id` is the user
    who made it (None: the customer's message or the clock); `data` holds what changed
    ({"from": ..., "to": ...}, names included so the thread reads without joins).
    """

    __tablename__ = "conversation_events"
    __table_args__ = (
        Index("ix_conversation_events_conversation_id_id", "conversation_id", "id"),
        Index("ix_conversation_events_participant_id", "participant", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    participant: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(100))  # the name shown ("Anna", "customer")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Label(Base):
    """A label a team puts on conversations ("invoice", "VIP"): a name and a colour.

    `key` is the name folded to lower case: two labels never differ by case alone.
    """

    __tablename__ = "labels"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    key: Mapped[str] = mapped_column(String(50), unique=True)
    colour: Mapped[str] = mapped_column(String(7))  # "#rrggbb"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConversationLabel(Base):
    """A label on a conversation row (a customer's rows carry the same labels)."""

    __tablename__ = "conversation_labels"
    __table_args__ = (Index("ix_conversation_labels_label_id", "label_id", "conversation_id"),)

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    label_id: Mapped[int] = mapped_column(
        ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True
    )


class ConversationRead(Base):
    """How far one user has read a conversation: their unread count starts after it."""

    __tablename__ = "conversation_reads"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    last_read_message_id: Mapped[int] = mapped_column(BigInteger, default=0)
    read_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Message(Base):
    """Every inbound and outbound message; a row exists before anything leaves."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_direction_id", "direction", "id"),
        Index("ix_messages_status_id", "status", "id"),
        Index("ix_messages_direction_status_id", "direction", "status", "id"),
        Index("ix_messages_participant_id", "participant", "id"),
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
        Index("ix_messages_created_at", "created_at"),
        # The panel's live updates ask "what changed since?" every second.
        Index("ix_messages_updated_at", "updated_at"),
        Index(
            "ix_messages_due",
            "next_attempt_at",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        # Scheduled messages by send time: the sweep's due check and the panel's list.
        Index(
            "ix_messages_scheduled",
            "scheduled_at",
            sqlite_where=text("status = 'scheduled'"),
            postgresql_where=text("status = 'scheduled'"),
        ),
        # Sent messages whose status Twilio has not reported as final yet (reconciliation).
        Index(
            "ix_messages_status_check",
            "status_check_at",
            sqlite_where=text("status_check_at IS NOT NULL"),
            postgresql_where=text("status_check_at IS NOT NULL"),
        ),
        Index(
            "ix_messages_unprocessed",
            "id",
            sqlite_where=text("processed_at IS NULL AND direction = 'inbound'"),
            postgresql_where=text("processed_at IS NULL AND direction = 'inbound'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    direction: Mapped[str] = mapped_column(String(8))  # inbound | outbound
    channel: Mapped[str] = mapped_column(String(10))  # sms | mms | whatsapp
    from_addr: Mapped[str] = mapped_column(String(64))
    to_addr: Mapped[str] = mapped_column(String(64))
    participant: Mapped[str] = mapped_column(String(20))
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    body: Mapped[str] = mapped_column(Text, default="")
    media: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    num_media: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[MessageStatus] = mapped_column(
        state_type(MessageStatus, length=16, name="status")
    )
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(Text)
    num_segments: Mapped[int] = mapped_column(Integer, default=1)
    encoding: Mapped[str | None] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(16))
    messaging_service_sid: Mapped[str | None] = mapped_column(String(64))
    content_sid: Mapped[str | None] = mapped_column(String(64))
    content_variables: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The send time asked for (POST /api/send-message with send_at); None = sent at once.
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    submit_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # None before the first attempt.
    submit_state: Mapped[SubmitState | None] = mapped_column(
        state_type(SubmitState, length=12, name="submit_state")
    )
    # The process holding the claim (relaydesk.core.owners): a dead one's claim is taken over
    # at once instead of after the lease.
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    # When to ask Twilio for this message's status, while it is not final (None: never).
    status_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MessageEvent(Base):
    """Every status callback exactly as received, kept even for unknown SIDs.

    `status` is Twilio's word as sent (not a MessageStatus): a status Twilio adds later
    is kept here and simply never applied to the message.
    """

    __tablename__ = "message_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )
    sid: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(20))
    error_code: Mapped[int | None] = mapped_column(Integer)
    applied: Mapped[bool] = mapped_column(default=False)
    idempotency_token: Mapped[str | None] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MessageCounter(Base):
    """Running totals per direction, kept in the same transaction as inserts and deletes."""

    __tablename__ = "message_counters"

    direction: Mapped[str] = mapped_column(String(8), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


# The search index (messaging.search) is derived data, kept in its own MetaData rather than
# Base's: the database copy and the test clean-up, which go through every model, leave it
# alone (a copied installation's worker reads the history into the new database's index).
# On SQLite the two index tables are FTS5 tables with the trigram tokenizer (the migration
# makes them; `rowid` is FTS5's own row id), on PostgreSQL tables with a pg_trgm GIN index:
# both answer "which rows contain this substring" from an index. `rowid` is the message's
# or the contact's id; `text` is folded (lower case, no diacritics).
SEARCH_METADATA = MetaData()
search_messages = Table(
    "search_messages",
    SEARCH_METADATA,
    Column("rowid", BigId, primary_key=True, autoincrement=False),
    Column("text", Text, nullable=False),
)
search_contacts = Table(
    "search_contacts",
    SEARCH_METADATA,
    Column("rowid", BigId, primary_key=True, autoincrement=False),
    Column("text", Text, nullable=False),
)
# How far the indexer has come: per kind, a position (an id) and a change time.
search_progress = Table(
    "search_progress",
    SEARCH_METADATA,
    Column("name", String(20), primary_key=True),
    Column("position", BigId, nullable=False, default=0),
    Column("changed_at", UTCDateTime),
)
