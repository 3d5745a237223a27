"""Attachments: recorded with their message, fetched and understood in the background.

A received file is recorded `pending` in the transaction that hands the message to its
follow-up handlers; a job downloads it (credentials to Twilio only), keeps it by its
SHA-256, and then transcribes a voice note or describes an image. Nothing here runs a
model or the network inside a transaction. The message's `media` column is the list
the API and the chat show; it is rewritten whenever an attachment changes, and never
holds a Twilio address.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from relaydesk.channels.twilio.parsing import media_of
from relaydesk.core.db import dialect_insert, utcnow
from relaydesk.core.tasks import enqueue_after_commit
from relaydesk.media import kinds
from relaydesk.media.models import Attachment, AttachmentState
from relaydesk.messaging.models import Message

log = logging.getLogger(__name__)

# How long an automatic answer waits for a message's files to be understood.
ANSWER_WAIT = timedelta(minutes=5)
UNFINISHED = (AttachmentState.PENDING, AttachmentState.WORKING)


def record_inbound(session: Session, message: Message) -> None:
    """Record a received message's files as pending and queue their download."""
    now = utcnow()
    rows = [
        {
            "message_id": message.id,
            "position": i,
            "source_url": item["url"],
            "content_type": kinds.normalise(item["content_type"]),
            "state": AttachmentState.PENDING,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for i, item in enumerate(media_of(message.raw or {}))
    ]
    if not rows:
        return
    insert = dialect_insert(session)(Attachment)
    session.execute(insert.values(rows).on_conflict_do_nothing())
    refresh(session, message.id)
    enqueue_after_commit(session, "media.process", message.id)


def record_outbound(session: Session, message_id: int, files: list[OutboundFile]) -> None:
    """Record the files of a message we send (our own links are shown from our copy)."""
    if not files:
        return
    now = utcnow()
    session.execute(
        dialect_insert(session)(Attachment)
        .values(
            [
                {
                    "message_id": message_id,
                    "position": i,
                    "source_url": f.url,
                    "content_type": kinds.normalise(f.content_type),
                    "size": f.size,
                    "sha256": f.sha256,
                    "state": AttachmentState.STORED if f.sha256 else AttachmentState.REMOTE,
                    "transcript": f.transcript,
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for i, f in enumerate(files)
            ]
        )
        .on_conflict_do_nothing()
    )
    refresh(session, message_id)


@dataclass(frozen=True)
class OutboundFile:
    """A file attached to a message we send."""

    url: str
    content_type: str | None = None
    size: int | None = None
    sha256: str | None = None  # set when the file is one of ours
    transcript: str | None = None  # a voice reply's text


def unfinished(session: Session, message_id: int) -> bool:
    """True while some file of the message is still being fetched or understood."""
    return (
        session.scalar(
            select(Attachment.id)
            .where(Attachment.message_id == message_id, Attachment.state.in_(UNFINISHED))
            .limit(1)
        )
        is not None
    )


def should_wait(session: Session, message: Message) -> bool:
    """Whether an automatic answer to `message` should wait for its files."""
    if not message.num_media or message.created_at < utcnow() - ANSWER_WAIT:
        return False
    return unfinished(session, message.id)


def has_voice_note(session: Session, message_id: int) -> bool:
    """True when the message carries an audio file (a voice note)."""
    rows = session.scalars(
        select(Attachment.content_type).where(Attachment.message_id == message_id)
    ).all()
    return any(kinds.kind_of(ct) == "audio" for ct in rows)


def get(session: Session, attachment_id: int) -> Attachment | None:
    return session.get(Attachment, attachment_id)


# --- what the API and the chat show ----------------------------------------------------


def file_url(attachment_id: int) -> str:
    """The signed-in address of a stored file."""
    return f"/media/{attachment_id}"


def view(row: Attachment) -> dict[str, Any]:
    """One attachment as the API shows it (never the Twilio address)."""
    url = (
        file_url(row.id)
        if row.sha256
        else (row.source_url if row.state == AttachmentState.REMOTE else None)
    )
    item: dict[str, Any] = {
        "id": row.id,
        "kind": kinds.kind_of(row.content_type),
        "content_type": row.content_type or None,
        "size": row.size,
        "url": url,
        "state": row.state,
    }
    for key in ("error", "transcript", "description"):
        value = getattr(row, key)
        if value:
            item[key] = value
    return item


def refresh(session: Session, message_id: int) -> None:
    session.flush()
    rows = session.scalars(
        select(Attachment).where(Attachment.message_id == message_id).order_by(Attachment.position)
    ).all()
    outbound = session.scalar(select(Message.direction).where(Message.id == message_id)) == (
        "outbound"
    )
    items = [view(row) for row in rows]
    if outbound:
        # What delivery hands to Twilio (never shown by the API: not in its schema).
        for item, row in zip(items, rows, strict=True):
            item["send_url"] = row.source_url
    session.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(media=items, num_media=len(rows))
        .execution_options(synchronize_session=False)
    )
