"""Customers' files as Twilio serves them: Basic auth, then a 307 to a signed CDN address."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from relaydesk.channels.sandbox.calls import twilio_call
from relaydesk.channels.sandbox.errors import not_found
from relaydesk.channels.sandbox.media import CDN_PATH, cdn_signature_ok, cdn_url, media_path
from relaydesk.channels.sandbox.render import API_VERSION, rfc2822
from relaydesk.channels.sandbox.runtime import Emulator, get_emulator
from relaydesk.channels.sandbox.store import StoredMedia

router = APIRouter()

MEDIA = "/2010-04-01/Accounts/{account_sid}/Messages/{message_sid}/Media/{media_sid}"


@router.get(MEDIA)
async def fetch_media(
    request: Request, account_sid: str, message_sid: str, media_sid: str
) -> Response:
    """The file behind Basic auth: 307 to a 4-hour CDN address; `.json` is the resource."""
    as_json = media_sid.endswith(".json")
    sid = media_sid.removesuffix(".json")

    async def work(emu: Emulator) -> Response:
        media = await run_in_threadpool(emu.store.get_media, sid)
        if media is None or media.message_sid != message_sid:
            raise not_found(media_path(account_sid, message_sid, media_sid))
        if as_json:
            return JSONResponse(media_json(media, account_sid))
        # Same host and prefix the client used, like Twilio's CDN answering next to its API.
        prefix = str(request.url).split(f"/{API_VERSION}/", 1)[0]
        return RedirectResponse(cdn_url(prefix, sid, emu.settings.auth_token), status_code=307)

    return await twilio_call(request, account_sid, work)


@router.get(CDN_PATH.replace("{sid}", "{media_sid}"))
async def cdn_media(request: Request, media_sid: str) -> Response:
    """The file's bytes for whoever holds a valid signed address, and for nobody else."""
    emu = get_emulator()
    # Like S3 behind Twilio's CDN: a signed URL plus credentials is refused, so a client
    # that forwards its Basic auth across the redirect finds out here.
    if "authorization" in request.headers:
        return _cdn_error(400, "InvalidArgument", "Only one auth mechanism allowed")
    params = request.query_params
    signed = cdn_signature_ok(
        media_sid, params.get("Expires", ""), params.get("Signature", ""), emu.settings.auth_token
    )
    if not signed:
        return _cdn_error(403, "AccessDenied", "Request has expired or the signature is wrong")
    media = await run_in_threadpool(emu.store.get_media, media_sid)
    if media is None:
        return _cdn_error(404, "NoSuchKey", "The specified key does not exist.")
    return Response(
        media.data,
        media_type=media.content_type,
        headers={"Cache-Control": "private, max-age=14400"},
    )


def media_json(media: StoredMedia, account_sid: str) -> dict[str, Any]:
    """The `api.v2010.account.message.media` resource."""
    return {
        "account_sid": account_sid,
        "content_type": media.content_type,
        "date_created": rfc2822(media.date_created),
        "date_updated": rfc2822(media.date_created),
        "parent_sid": media.message_sid,
        "sid": media.sid,
        "uri": media_path(account_sid, media.message_sid, media.sid) + ".json",
    }


def _cdn_error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"code": code, "message": message}, status_code=status)
