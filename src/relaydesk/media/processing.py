"""The background work on attachments: download, keep by SHA-256, transcribe or describe.

Claimed with a lease (a dead worker's files are picked up again by the sweep); nothing
runs a model or the network inside a transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from relaydesk.ai.credentials import openai_credentials
from relaydesk.channels.twilio.account import current_account
from relaydesk.core.config import get_settings
from relaydesk.core.db import session_scope, utcnow
from relaydesk.core.i18n import N_
from relaydesk.core.tasks import enqueue, yield_to_live
from relaydesk.media import audio, kinds, store, transcribe, vision
from relaydesk.media.download import DownloadError, Source, TooLarge, download
from relaydesk.media.models import Attachment, AttachmentState
from relaydesk.media.providers import OpenAIAccess
from relaydesk.media.service import refresh

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
RETRY_SECONDS = 20.0  # × attempts
WORKING_LEASE = timedelta(minutes=10)
LOST_AFTER = timedelta(seconds=45)


@dataclass(frozen=True)
class Claimed:
    id: int
    source_url: str | None
    content_type: str
    attempts: int


def process(message_id: int) -> None:
    """Fetch, keep and understand the pending files of one message (the job)."""
    yield_to_live()  # transcribing and describing are long: waiting answers go first
    claimed = _claim(message_id)
    if not claimed:
        return
    source = _twilio_source()
    settings = get_settings()
    with session_scope(write=False) as session:
        sizes = session.scalars(
            select(Attachment.size).where(
                Attachment.message_id == message_id, Attachment.state == AttachmentState.STORED
            )
        ).all()
        used = sum(size or 0 for size in sizes)
    retry = False
    for item in claimed:
        changes = _fetch(item, source, max(0, settings.media_max_bytes - used))
        if changes.get("state") == AttachmentState.STORED:
            used += int(changes.get("size") or 0)
            changes.update(_understand(str(changes["sha256"]), str(changes["content_type"])))
        retry = retry or changes.get("state") == AttachmentState.PENDING
        with session_scope() as session:
            session.execute(
                update(Attachment)
                .where(Attachment.id == item.id, Attachment.state == AttachmentState.WORKING)
                .values(**changes, updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            refresh(session, message_id)
    if retry:
        attempts = max(item.attempts for item in claimed)
        enqueue("media.process", message_id, delay=RETRY_SECONDS * attempts)
    # An automatic answer that waited for these files may go ahead now.
    enqueue("automation.resume", message_id)


def _claim(message_id: int) -> list[Claimed]:
    with session_scope() as session:
        rows = session.execute(
            update(Attachment)
            .where(Attachment.message_id == message_id, Attachment.state == AttachmentState.PENDING)
            .values(
                state=AttachmentState.WORKING, attempts=Attachment.attempts + 1, updated_at=utcnow()
            )
            .returning(
                Attachment.id, Attachment.source_url, Attachment.content_type, Attachment.attempts
            )
            .execution_options(synchronize_session=False)
        ).all()
    return sorted((Claimed(*row) for row in rows), key=lambda c: c.id)


def _twilio_source() -> Source:
    account = current_account()
    return Source(account.api_base, account.account_sid, account.auth_token, account.sandbox)


def _fetch(item: Claimed, source: Source, budget: int) -> dict[str, Any]:
    settings = get_settings()
    if not item.source_url:
        return {
            "state": AttachmentState.FAILED,
            "error": N_("the webhook gave no address for this file"),
        }
    if budget <= 0:
        return _refused(
            N_("the message is over the %(limit)s MB limit")
            % {"limit": settings.media_max_bytes // kinds.MB}
        )
    try:
        got = download(
            item.source_url,
            source,
            max_bytes=budget,
            timeout=settings.media_download_timeout_seconds,
        )
    except TooLarge as exc:
        return _refused(
            N_("%(reason)s (at most %(limit)s MB per message)")
            % {"reason": exc, "limit": settings.media_max_bytes // kinds.MB}
        )
    except DownloadError as exc:
        if exc.transient and item.attempts < MAX_ATTEMPTS:
            error = N_("will retry: %(reason)s") % {"reason": exc}
            return {"state": AttachmentState.PENDING, "error": error}
        return {"state": AttachmentState.FAILED, "error": str(exc)}
    verdict = kinds.check_inbound(item.content_type or got.content_type, got.data)
    if verdict.problem:
        return _refused(verdict.problem, content_type=verdict.content_type, size=len(got.data))
    return {
        "state": AttachmentState.STORED,
        "error": None,
        "sha256": store.put(got.data),
        "size": len(got.data),
        "content_type": verdict.content_type,
    }


def _refused(why: str, **extra: Any) -> dict[str, Any]:
    log.info("media refused: %s", why)
    return {"state": AttachmentState.REFUSED, "error": why, **extra}


def _understand(sha256: str, content_type: str) -> dict[str, Any]:
    """A voice note's transcript or an image's description (a failure is noted, not fatal)."""
    kind = kinds.kind_of(content_type)
    if kind not in ("audio", "image"):
        return {}
    try:
        data = store.read(sha256)
        if kind == "audio":
            wav = audio.to_wav16k(data)
            text = transcribe.transcribe(wav, openai=openai_access()).text
            return {"transcript": text or None}
        if not vision.vision_enabled():
            return {}
        described = vision.describe_image(data, content_type, openai=openai_access())
        return {"description": described or None}
    except Exception as exc:
        what = "transcription" if kind == "audio" else "image description"
        log.warning("%s failed: %s", what, exc)
        failed = (
            N_("transcription failed: %(reason)s")
            if kind == "audio"
            else N_("image description failed: %(reason)s")
        )
        return {"error": failed % {"reason": str(exc)[:300]}}


def openai_access() -> OpenAIAccess:
    """The OpenAI key and address in effect: the environment first, then the AI settings."""
    with session_scope(write=False) as session:
        credentials = openai_credentials(session)
    timeout = get_settings().llm_timeout_seconds
    return OpenAIAccess(credentials.api_key, credentials.base_url, timeout)


def sweep() -> None:
    """Hand files whose job was lost (or whose worker died) to a new job."""
    now = utcnow()
    with session_scope() as session:
        session.execute(
            update(Attachment)
            .where(
                Attachment.state == AttachmentState.WORKING,
                Attachment.updated_at < now - WORKING_LEASE,
            )
            .values(state=AttachmentState.PENDING, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        # Pending this long means its job was lost (or its retry is due): a second
        # job is harmless, the claim lets only one of them work on a file.
        due = session.scalars(
            select(Attachment.message_id)
            .where(
                Attachment.state == AttachmentState.PENDING,
                Attachment.updated_at < now - LOST_AFTER,
            )
            .distinct()
            .limit(200)
        ).all()
    for message_id in due:
        enqueue("media.process", message_id)
