"""REST routes of the daily news digests: recipients, preview, send, news_config.json."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from relaydesk.core.db import session_scope
from relaydesk.core.errors import Invalid, TooLarge
from relaydesk.core.i18n import N_
from relaydesk.deps import Id, Operator, SessionDep, Viewer, WriteSessionDep
from relaydesk.digests import configfile, service
from relaydesk.digests.compose import Digest
from relaydesk.digests.schemas import (
    DigestPreview,
    ImportOut,
    RecipientIn,
    RecipientOut,
    RecipientPatch,
)
from relaydesk.messaging.models import Message
from relaydesk.messaging.schemas import MessageOut

router = APIRouter(prefix="/api/news", tags=["news"])

MAX_IMPORT_BYTES = 1024 * 1024

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such recipient"},
    422: {"description": "Invalid number, time, time zone, mode or prompt"},
}
_DIGEST_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {"description": "No news indexed (code no_news), or the number unsubscribed"},
    502: {"description": "The index or the LLM could not answer"},
}


@router.get("/recipients", response_model=list[RecipientOut])
def list_recipients(principal: Viewer, session: SessionDep) -> list[RecipientOut]:
    """Every digest recipient with its next digest and the last one's outcome."""
    return [service.view(r) for r in service.list_recipients(session)]


@router.post("/recipients", response_model=RecipientOut, status_code=201, responses=_ERRORS)
def create_recipient(
    payload: RecipientIn, principal: Operator, session: WriteSessionDep
) -> RecipientOut:
    """Send `phone` a digest every day at `send_time` in `timezone` (the first: tomorrow if
    today's time has passed)."""
    fields = service.clean(
        payload.phone, payload.send_time, payload.timezone, payload.mode, payload.prompt
    )
    recipient = service.create(session, fields, principal.actor, enabled=payload.enabled)
    return service.view(recipient)


@router.patch("/recipients/{recipient_id}", response_model=RecipientOut, responses=_ERRORS)
def update_recipient(
    recipient_id: Id, payload: RecipientPatch, principal: Operator, session: WriteSessionDep
) -> RecipientOut:
    """Change a recipient's settings or `enabled` (audited)."""
    recipient = service.update_recipient(
        session, recipient_id, principal.actor, payload.model_dump(exclude_unset=True)
    )
    return service.view(recipient)


@router.delete("/recipients/{recipient_id}", status_code=204, responses=_ERRORS)
def delete_recipient(recipient_id: Id, principal: Operator, session: WriteSessionDep) -> Response:
    """Delete a recipient (audited); digests already sent stay in the history."""
    service.delete_recipient(session, recipient_id, principal.actor)
    return Response(status_code=204)


@router.post("/recipients/{recipient_id}/toggle", response_model=RecipientOut, responses=_ERRORS)
def toggle_recipient(
    recipient_id: Id, principal: Operator, session: WriteSessionDep
) -> RecipientOut:
    """Disable an enabled recipient or enable a disabled one."""
    recipient = service.toggle(session, recipient_id, principal.actor)
    return service.view(recipient)


@router.post(
    "/recipients/{recipient_id}/test", response_model=DigestPreview, responses=_DIGEST_ERRORS
)
def test_recipient(recipient_id: Id, principal: Operator) -> Digest:
    """The digest the recipient would get now, with its sources; nothing is sent."""
    return service.preview(recipient_id)


@router.post(
    "/recipients/{recipient_id}/send",
    response_model=MessageOut,
    status_code=201,
    responses=_DIGEST_ERRORS,
)
def send_recipient(recipient_id: Id, principal: Operator, session: SessionDep) -> Any:
    """Send a digest now (audited); today's scheduled digest still goes out at its time."""
    message_id = service.send_now(recipient_id, principal.actor)
    message = session.get(Message, message_id)
    assert message is not None
    return message


@router.get("/config")
def get_config(principal: Viewer, session: SessionDep) -> Any:
    """The recipients in the original app's news_config.json format."""
    return configfile.export(session)


_TOO_LARGE = N_("The file is larger than 1 MB; news_config.json files are far smaller")


async def _read_capped(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_IMPORT_BYTES:
        raise TooLarge(_TOO_LARGE, params={})
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > MAX_IMPORT_BYTES:
            raise TooLarge(_TOO_LARGE, params={})
    return bytes(data)


async def _once(data: bytes) -> AsyncGenerator[bytes, None]:
    yield data


async def _document(request: Request) -> Any:
    """The JSON document sent as the body or as the one file of a multipart form."""
    data = await _read_capped(request)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        try:
            form = await MultiPartParser(request.headers, _once(data), max_files=1).parse()
        except (MultiPartException, KeyError, ValueError):
            # No boundary in the Content-Type, or a body that is not the form it says.
            raise Invalid(
                N_(
                    "The upload is not valid multipart/form-data; send the file as a form "
                    "field or the JSON itself as the body"
                ),
                params={},
                field="file",
            ) from None
        files = [v for v in form.values() if isinstance(v, UploadFile)]
        if not files:
            raise Invalid(
                N_("Attach the news_config.json file to the form"), params={}, field="file"
            )
        data = await files[0].read()
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Invalid(
            N_("The file is not valid JSON: %(error)s"), params={"error": str(exc)}, field="file"
        ) from None


@router.post(
    "/config/import",
    response_model=ImportOut,
    responses={
        413: {"description": "Over 1 MB"},
        422: {"description": "Not JSON, or no recipients in it"},
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            }
        }
    },
)
async def import_config(request: Request, principal: Operator) -> Any:
    """Import recipients from the original app's news_config.json (JSON body or a file).

    Entries that cannot be read are listed with the reason; the rest are imported; an
    entry identical to an existing recipient is not added twice.
    """
    document = await _document(request)

    def run() -> dict[str, Any]:
        with session_scope() as session:
            report = configfile.import_config(session, document, principal.actor)
            session.flush()
            created = [service.view(service.get(session, i)) for i in report.created]
            return {
                "created": created,
                "duplicates": report.duplicates,
                "problems": report.problems,
            }

    return await run_in_threadpool(run)
