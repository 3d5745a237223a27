"""Files we send: links we publish for Twilio, checks of outbound files, voice replies."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Literal

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from relaydesk.core import netguard
from relaydesk.core.config import get_settings
from relaydesk.core.db import session_scope, utcnow
from relaydesk.core.errors import Invalid, ProviderFailed
from relaydesk.core.i18n import N_
from relaydesk.media import audio, kinds, speech, store
from relaydesk.media.models import MediaLink
from relaydesk.media.service import OutboundFile

log = logging.getLogger(__name__)

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
            raise Invalid(
                N_("%(url)s is not a file relaydesk holds"),
                params={"url": url[:80]},
                field="media_urls",
            )
        if link.expires_at <= utcnow():
            raise Invalid(
                N_("the link %(url)s expired at %(expired_at)s UTC; upload the file again"),
                params={"url": url[:80], "expired_at": f"{link.expires_at:%Y-%m-%d %H:%M}"},
                field="media_urls",
            )
        problem = kinds.check_outbound(channel, link.content_type, link.size)
        if problem:
            raise Invalid(problem.template, params=problem.params, field="media_urls")
        found.append(OutboundFile(url, link.content_type, link.size, link.sha256))
    return found


def _inspect_remote(url: str, channel: str) -> OutboundFile:
    settings = get_settings()
    try:
        if not settings.media_allow_private_networks:
            netguard.check_public_url(url, setting="MEDIA_ALLOW_PRIVATE_NETWORKS")
        answer = httpx.head(url, timeout=5.0, follow_redirects=False)
    except netguard.BlockedAddress as exc:
        raise Invalid(
            N_("media URL refused: %(reason)s"), params={"reason": str(exc)}, field="media_urls"
        ) from None
    except httpx.HTTPError as exc:
        raise Invalid(
            N_("the file at %(url)s could not be checked: %(reason)s"),
            params={"url": url[:80], "reason": str(exc)},
            field="media_urls",
        ) from None
    if answer.status_code >= 400 and answer.status_code != 405:
        raise Invalid(
            N_("the file at %(url)s answered %(status)s; Twilio could not fetch it"),
            params={"url": url[:80], "status": answer.status_code},
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
            raise Invalid(problem.template, params=problem.params, field="media_urls")
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
        raise ProviderFailed(
            N_("text to speech failed: %(reason)s"), params={"reason": str(exc)[:300]}
        ) from None
    with session_scope() as session:
        link = publish(session, data, audio.content_type_for(fmt), purpose="voice_reply")
        return link_url(link)
