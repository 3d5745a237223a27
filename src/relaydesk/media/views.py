"""What the media domain adds to the panel's chat page: shared contacts' cards, files."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from relaydesk.media import kinds, service, store, vcard
from relaydesk.messaging import views as messaging_views

router = APIRouter(include_in_schema=False)  # no pages of its own

CARD_MAX_BYTES = 64 * 1024
# What the composer offers to attach: what WhatsApp or MMS accept from us.
ATTACHABLE = sorted(kinds.WHATSAPP_OUTBOUND | kinds.MMS_IMAGES | kinds.MMS_OTHER)


@messaging_views.thread_part
def _files(session: Session, number: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Each message's files, a shared contact with its card; whether any is still coming."""
    for item in items:
        item["media"] = [_with_cards(session, file) for file in item["media"]]
    # While a file is still downloading the thread asks again by itself.
    pending = any(file.get("state") in service.UNFINISHED for m in items for file in m["media"])
    return {"media_pending": pending}


@messaging_views.chat_part
def _composer(number: str) -> dict[str, Any]:
    """The file types the composer lets an operator attach."""
    return {"attach_types": ",".join(ATTACHABLE)}


def _with_cards(session: Session, file: dict[str, Any]) -> dict[str, Any]:
    """A shared contact with the names and numbers read from its (small) vCard."""
    if file.get("kind") != "contact" or file.get("state") != "stored":
        return file
    if (file.get("size") or 0) > CARD_MAX_BYTES:
        return file
    row = service.get(session, int(file["id"]))
    if row is None or not row.sha256:
        return file
    try:
        cards = vcard.parse(store.read(row.sha256))
    except (OSError, ValueError):
        return file
    return {**file, "cards": cards}
