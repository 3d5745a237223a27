"""Creating messages in the emulator: what our app sends and what simulated customers send."""

from __future__ import annotations

import time

from relaydesk.channels.sandbox.lifecycle import new_sid, segments_for
from relaydesk.channels.sandbox.runtime import Emulator
from relaydesk.channels.sandbox.store import StoredMessage
from relaydesk.channels.sandbox.validation import CreateRequest


def create_outbound(
    emu: Emulator, req: CreateRequest, *, direction: str = "outbound-api"
) -> StoredMessage:
    """Store a validated outbound message and plan its first status step."""
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


def create_inbound(emu: Emulator, *, from_addr: str, to_addr: str, body: str) -> StoredMessage:
    """Store a message a simulated customer sent to one of our numbers."""
    now = time.time()
    msg = StoredMessage(
        sid=new_sid(False),
        account_sid=emu.settings.account_sid,
        direction="inbound",
        from_addr=from_addr,
        to_addr=to_addr,
        body=body,
        status="received",
        num_segments=segments_for(to_addr, body, 0),
        num_media=0,
        date_created=now,
        date_updated=now,
        date_sent=now,
        messaging_service_sid=emu.settings.twilio_messaging_service_sid,
    )
    emu.store.insert(msg, None)
    return msg
