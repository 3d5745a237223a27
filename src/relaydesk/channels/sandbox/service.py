"""Creating messages in the emulator: what our app sends and what simulated customers send."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from relaydesk.channels.sandbox.errors import ApiError
from relaydesk.channels.sandbox.lifecycle import new_sid, segments_for
from relaydesk.channels.sandbox.media import Upload, media_path, new_media_sid
from relaydesk.channels.sandbox.outbound import shown
from relaydesk.channels.sandbox.runtime import Emulator
from relaydesk.channels.sandbox.store import StoredMedia, StoredMessage
from relaydesk.channels.sandbox.validation import CreateRequest
from relaydesk.core import netguard

log = logging.getLogger(__name__)


def create_outbound(
    emu: Emulator, req: CreateRequest, *, direction: str = "outbound-api"
) -> StoredMessage:
    """Store a validated outbound message and plan its first status step.

    Raises ApiError 21620 for a media URL the network guard refuses.
    """
    check_media_urls(emu, req.media_urls)
    now = time.time()
    via_service = req.messaging_service_sid is not None
    msg = StoredMessage(
        sid=new_sid(bool(req.media_urls)),
        account_sid=emu.settings.account_sid,
        direction=direction,
        # With a Messaging Service the sender is chosen later, on the way to `queued`.
        from_addr=req.from_,
        to_addr=req.to,
        body=req.body,
        status="accepted" if via_service else "queued",
        # Twilio reports 0 segments until a Messaging Service has picked the sender.
        num_segments=0 if via_service else segments_for(req.to, req.body, len(req.media_urls)),
        num_media=len(req.media_urls),
        date_created=now,
        date_updated=now,
        messaging_service_sid=req.messaging_service_sid,
        media=req.media_urls,
        content_sid=req.content_sid,
        content_variables=req.content_variables,
        status_callback=req.status_callback,
    )
    due = now + emu.control.knobs.status_delay_ms / 1000
    emu.store.insert(msg, due)
    emu.dispatcher.schedule(msg.sid, due)
    return msg


def check_media_urls(emu: Emulator, urls: Sequence[str]) -> None:
    """Refuse, as Twilio refuses media it cannot use (21620), files at internal addresses."""
    for url in urls:
        try:
            emu.outbound.check(url)
        except netguard.Unresolvable:
            continue  # nothing is fetched now; the phone page asks the guard again later
        except netguard.BlockedAddress as exc:
            log.warning("sandbox: media URL %s refused: %s", shown(url), exc)
            raise ApiError(
                400, 21620, f"Invalid media URL(s): {shown(url)} refused: {exc}"
            ) from None


def create_inbound(
    emu: Emulator,
    *,
    from_addr: str,
    to_addr: str,
    body: str,
    uploads: Sequence[Upload] = (),
    api_base: str | None = None,
) -> tuple[StoredMessage, list[StoredMedia]]:
    """Store a message (and its files) a simulated customer sent to one of our numbers.

    Each file gets a Twilio-style media URL on `api_base` (default: the API base
    relaydesk is configured with), fetchable only with the account's credentials.
    """
    now = time.time()
    sid = new_sid(bool(uploads))
    base = (api_base or emu.settings.twilio_api_base).rstrip("/")
    account = emu.settings.account_sid
    media = [
        StoredMedia(new_media_sid(), sid, upload.content_type, upload.data, now)
        for upload in uploads
    ]
    msg = StoredMessage(
        sid=sid,
        account_sid=account,
        direction="inbound",
        from_addr=from_addr,
        to_addr=to_addr,
        body=body,
        status="received",
        num_segments=segments_for(to_addr, body, len(media)),
        num_media=len(media),
        date_created=now,
        date_updated=now,
        date_sent=now,
        messaging_service_sid=emu.settings.twilio_messaging_service_sid,
        media=tuple(base + media_path(account, sid, m.sid) for m in media),
    )
    emu.store.insert(msg, None, media)
    return msg, media
