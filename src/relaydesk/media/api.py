"""Files: stored attachments for signed-in users, uploads, and the public expiring links."""

from __future__ import annotations

from typing import Annotated, Any

import filetype
from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import FileResponse, Response

from relaydesk.core.config import get_settings
from relaydesk.core.db import utcnow
from relaydesk.core.errors import Gone, Invalid, NotFound, TooLarge
from relaydesk.core.i18n import N_
from relaydesk.core.names import content_disposition
from relaydesk.deps import Id, Operator, SessionDep, Viewer, WriteSessionDep
from relaydesk.media import kinds, outbound, store
from relaydesk.media.models import Attachment
from relaydesk.media.schemas import UploadOut
from relaydesk.messaging.service import whatsapp_window as window

router = APIRouter(tags=["media"])

INLINE = ("image/", "audio/", "video/")
# Nothing a file says may run in our origin: no scripts, no plugins, no framing.
SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; media-src 'self'; sandbox",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def _file_response(sha256: str, content_type: str, name: str, *, private: bool) -> Response:
    try:
        path = store.path_of(sha256)
    except ValueError:
        raise NotFound(N_("No such file"), params={}) from None
    if not path.exists():
        raise NotFound(N_("The file is no longer stored"), params={})
    headers = {
        **SAFE_HEADERS,
        "Content-Disposition": content_disposition(name, inline=content_type.startswith(INLINE)),
        "Cache-Control": "private, max-age=3600" if private else "public, max-age=300",
    }
    return FileResponse(
        path, media_type=content_type or "application/octet-stream", headers=headers
    )


@router.get("/media/{attachment_id}", response_class=Response)
def attachment_file(attachment_id: Id, principal: Viewer, session: SessionDep) -> Response:
    """A message's stored file (signed-in users and API tokens only)."""
    row = session.get(Attachment, attachment_id)
    if row is None or not row.sha256:
        raise NotFound(N_("No stored file with this id"), params={})
    name = f"attachment-{row.id}{_extension(row.content_type)}"
    return _file_response(row.sha256, row.content_type, name, private=True)


@router.post("/api/media", status_code=201, response_model=UploadOut)
def upload(
    principal: Operator,
    session: WriteSessionDep,
    file: Annotated[UploadFile, File(description="the file to attach")],
) -> Any:
    """Upload a file to attach to messages; the answer's `url` goes into `media_urls`.

    The address is public (Twilio fetches it without credentials), unguessable, and
    expires after MEDIA_LINK_TTL_MINUTES.
    """
    # A plain function, run in a worker thread: storing the file and its row must not
    # hold up the event loop (SQLite's write lock can take seconds to come).
    limit = get_settings().media_max_bytes
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(
            N_("The file is over the %(limit)s MB limit"), params={"limit": limit // kinds.MB}
        )
    if not data:
        raise Invalid(N_("The file is empty"), params={}, field="file")
    verdict = kinds.check_inbound(file.content_type, data)
    if verdict.problem:
        # The problem is stored on received files too, in English: it stays a plain value.
        raise Invalid(
            N_("This file cannot be sent: %(problem)s"),
            params={"problem": verdict.problem},
            field="file",
        )
    link = outbound.publish(
        session,
        data,
        verdict.content_type,
        purpose="upload",
        filename=file.filename,
        user_id=principal.id if principal.kind == "user" else principal.owner_id,
    )
    return {
        "url": outbound.link_url(link),
        "content_type": link.content_type,
        "size": link.size,
        "filename": link.filename,
        "expires_at": link.expires_at,
    }


@router.api_route("/m/{token}", methods=["GET", "HEAD"], include_in_schema=False)
def published(token: str, session: SessionDep) -> Response:
    """A published file, for Twilio to fetch (no sign-in: the address is the secret)."""
    link = outbound.find_link(session, token)
    if link is None:
        raise NotFound(N_("No such file"), params={})
    if link.expires_at <= utcnow():
        raise Gone(N_("This link has expired"), params={})
    name = link.filename or f"file{_extension(link.content_type)}"
    return _file_response(link.sha256, link.content_type, name, private=False)


def _extension(content_type: str) -> str:
    guessed = filetype.get_type(mime=content_type)
    if guessed is not None:
        return f".{guessed.extension}"
    return {"text/vcard": ".vcf", "application/pdf": ".pdf", "text/plain": ".txt"}.get(
        content_type, ""
    )


@router.get("/api/whatsapp/window")
def whatsapp_window(
    principal: Viewer,
    session: SessionDep,
    to: Annotated[str, Query(max_length=40, description="the customer, e.g. whatsapp:+48…")],
    from_: Annotated[str | None, Query(alias="from", max_length=40)] = None,
) -> dict[str, Any]:
    """Whether free text may go to this WhatsApp customer now, and until when."""
    return window(session, to, from_)
