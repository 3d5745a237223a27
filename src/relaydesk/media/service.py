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
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from relaydesk.ai.credentials import openai_credentials
from relaydesk.channels.twilio.account import current_account
from relaydesk.channels.twilio.parsing import media_of
from relaydesk.core import netguard
from relaydesk.core.config import get_settings
from relaydesk.core.db import dialect_insert, session_scope, utcnow
from relaydesk.core.errors import Invalid, ProviderFailed
from relaydesk.core.tasks import enqueue, enqueue_after_commit
from relaydesk.media import audio, kinds, speech, store, transcribe, vision
from relaydesk.media.download import DownloadError, Source, TooLarge, download
from relaydesk.media.models import Attachment, AttachmentState, MediaLink
from relaydesk.media.providers import OpenAIAccess
from relaydesk.messaging.models import Message

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
RETRY_SECONDS = 20.0  # × attempts
WORKING_LEASE = timedelta(minutes=10)
LOST_AFTER = timedelta(seconds=45)
# How long an automatic answer waits for a message's files to be understood.
ANSWER_WAIT = timedelta(minutes=5)
UNFINISHED = (AttachmentState.PENDING, AttachmentState.WORKING)


@dataclass(frozen=True)
class Claimed:
    id: int
    source_url: str | None
    content_type: str
    attempts: int


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
    _refresh(session, message.id)
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
    _refresh(session, message_id)


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


# --- the background work ---------------------------------------------------------------


def process(message_id: int) -> None:
    """Fetch, keep and understand the pending files of one message (the job)."""
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
            _refresh(session, message_id)
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
            "error": "the webhook gave no address for this file",
        }
    if budget <= 0:
        return _refused(f"the message is over the {settings.media_max_bytes // kinds.MB} MB limit")
    try:
        got = download(
            item.source_url,
            source,
            max_bytes=budget,
            timeout=settings.media_download_timeout_seconds,
        )
    except TooLarge as exc:
        return _refused(f"{exc} (at most {settings.media_max_bytes // kinds.MB} MB per message)")
    except DownloadError as exc:
        if exc.transient and item.attempts < MAX_ATTEMPTS:
            return {"state": AttachmentState.PENDING, "error": f"will retry: {exc}"}
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
        return {"error": f"{what} failed: {str(exc)[:300]}"}


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


def _refresh(session: Session, message_id: int) -> None:
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


# --- files we publish for Twilio to fetch ----------------------------------------------

LINK_PATH = "/m/"


def publish(
    session: Session,
    data: bytes,
    content_type: str,
    *,
    purpose: str,
    filename: str | None = None,
    user_id: int | None = None,
) -> MediaLink:
    """Keep `data` and publish it at an unguessable address that expires."""
    settings = get_settings()
    now = utcnow()
    link = MediaLink(
        token=secrets.token_urlsafe(32),
        sha256=store.put(data),
        content_type=kinds.normalise(content_type),
        size=len(data),
        filename=(filename or None) and _safe_name(filename),
        purpose=purpose,
        user_id=user_id,
        created_at=now,
        expires_at=now + timedelta(minutes=settings.media_link_ttl_minutes),
    )
    session.add(link)
    session.flush()
    return link


def link_url(link: MediaLink) -> str:
    """The public address Twilio fetches the file from."""
    return f"{get_settings().base_url}{LINK_PATH}{link.token}"


def find_link(session: Session, token: str) -> MediaLink | None:
    """The link with this token, expired or not (None for anything unknown)."""
    if not token or len(token) > 64:
        return None
    return session.scalar(select(MediaLink).where(MediaLink.token == token))


def _own_token(url: str) -> str | None:
    prefix = get_settings().base_url + LINK_PATH
    return url[len(prefix) :] if url.startswith(prefix) else None


def inspect_outbound(session: Session, urls: list[str], channel: str) -> list[OutboundFile]:
    """Check the files of a message we are about to send; Invalid says what is wrong.

    Our own links are checked from what we stored; another address is asked (HEAD)
    for its type and size, through the guard against internal addresses.
    """
    found: list[OutboundFile] = []
    for url in urls:
        token = _own_token(url)
        if token is None:
            found.append(_inspect_remote(url, channel))
            continue
        link = find_link(session, token)
        if link is None:
            raise Invalid(f"{url[:80]} is not a file relaydesk holds", field="media_urls")
        if link.expires_at <= utcnow():
            raise Invalid(
                f"the link {url[:80]} expired at {link.expires_at:%Y-%m-%d %H:%M} UTC; "
                "upload the file again",
                field="media_urls",
            )
        problem = kinds.check_outbound(channel, link.content_type, link.size)
        if problem:
            raise Invalid(problem, field="media_urls")
        found.append(OutboundFile(url, link.content_type, link.size, link.sha256))
    return found


def _inspect_remote(url: str, channel: str) -> OutboundFile:
    settings = get_settings()
    try:
        if not settings.media_allow_private_networks:
            netguard.check_public_url(url, setting="MEDIA_ALLOW_PRIVATE_NETWORKS")
        answer = httpx.head(url, timeout=5.0, follow_redirects=False)
    except netguard.BlockedAddress as exc:
        raise Invalid(f"media URL refused: {exc}", field="media_urls") from None
    except httpx.HTTPError as exc:
        raise Invalid(
            f"the file at {url[:80]} could not be checked: {exc}", field="media_urls"
        ) from None
    if answer.status_code >= 400 and answer.status_code != 405:
        raise Invalid(
            f"the file at {url[:80]} answered {answer.status_code}; Twilio could not fetch it",
            field="media_urls",
        )
    if answer.status_code == 405 or answer.is_redirect:
        return OutboundFile(url)  # the server does not say; Twilio will judge
    ct = kinds.normalise(answer.headers.get("content-type"))
    length = answer.headers.get("content-length", "")
    size = int(length) if length.isdigit() else 0
    if ct:
        problem = kinds.check_outbound(channel, ct, size)
        if problem:
            raise Invalid(problem, field="media_urls")
    return OutboundFile(url, ct or None, size or None)


def _safe_name(name: str) -> str:
    """A file name to show and to offer on download: no folders, no control characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable() and ch not in '"<>|:*?')
    return cleaned.strip(" .")[:200] or "file"


def voice_reply(text: str, channel: str) -> str:
    """Speak `text` and publish it for Twilio: OGG/Opus on WhatsApp, MP3 on MMS."""
    fmt: Literal["ogg_opus", "mp3"] = "ogg_opus" if channel == "whatsapp" else "mp3"
    try:
        data = speech.synthesize(text, fmt=fmt)
    except Exception as exc:
        log.warning("voice reply failed: %s", exc)
        raise ProviderFailed(f"text to speech failed: {str(exc)[:300]}") from None
    with session_scope() as session:
        link = publish(session, data, audio.content_type_for(fmt), purpose="voice_reply")
        return link_url(link)
