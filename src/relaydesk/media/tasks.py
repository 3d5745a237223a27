"""Background jobs of the media domain."""

from __future__ import annotations

from sqlalchemy.orm import Session

from relaydesk.channels.twilio.parsing import InboundRecord
from relaydesk.core.tasks import BULK, periodic, task
from relaydesk.media import outbound, processing, service
from relaydesk.messaging import hooks
from relaydesk.messaging.models import Message


def _has_media(record: InboundRecord) -> bool:
    return bool(record.media)


def _inbound_many(session: Session, messages: list[Message]) -> None:
    for message in messages:
        if message.num_media:
            service.record_inbound(session, message)


@hooks.on_inbound("media", wants=_has_media, many=_inbound_many)
def inbound(session: Session, message: Message) -> None:
    """A received message's files are recorded (before its automatic answer is queued)."""
    service.record_inbound(session, message)


class _OutboundFiles:
    """The files of messages we send: checked before storing, kept with the message."""

    inspect = staticmethod(outbound.inspect_outbound)
    record = staticmethod(service.record_outbound)


hooks.on_outbound_files(_OutboundFiles())


@task("media.process", queue=BULK)
def process(message_id: int) -> None:
    """Download and understand one message's pending files."""
    processing.process(message_id)


@periodic("media.sweep", minutes="*")
def sweep() -> None:
    """Pick up files whose job was lost."""
    processing.sweep()
