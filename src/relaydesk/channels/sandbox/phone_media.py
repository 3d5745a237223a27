"""The files of the phone's messages as the page shows them: image, audio, video or link."""

from __future__ import annotations

import logging
import mimetypes
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import urllib3
from starlette.concurrency import run_in_threadpool

from relaydesk.channels.sandbox.media import cdn_url, content_type_for
from relaydesk.channels.sandbox.outbound import Outbound, shown
from relaydesk.channels.sandbox.runtime import Emulator
from relaydesk.channels.sandbox.store import StoredMessage
from relaydesk.core import netguard

log = logging.getLogger(__name__)

PROBE_TIMEOUT = urllib3.Timeout(connect=3.0, read=3.0)
PROBE_REDIRECTS = 3
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_PROBED_MAX = 512
_probed: dict[str, str] = {}


@dataclass(frozen=True)
class Shown:
    """One file in a bubble."""

    url: str
    content_type: str
    name: str

    @property
    def kind(self) -> str:
        """image, audio, video or file: which element shows it."""
        major = self.content_type.split("/", 1)[0]
        return major if major in ("image", "audio", "video") else "file"


async def attachments(emu: Emulator, messages: list[StoredMessage]) -> dict[str, list[Shown]]:
    """Files per message SID: the customer's via signed CDN links, ours as sent."""
    inbound = [m.sid for m in messages if m.direction == "inbound" and m.num_media]
    stored = await run_in_threadpool(emu.store.media_types, inbound)
    cdn_base = urlsplit(emu.settings.twilio_api_base).path.rstrip("/")
    shown: dict[str, list[Shown]] = {}
    for msg in messages:
        if msg.sid in stored:
            shown[msg.sid] = [
                Shown(cdn_url(cdn_base, sid, emu.settings.auth_token), content_type, sid)
                for sid, content_type in stored[msg.sid]
            ]
        elif msg.media and msg.direction != "inbound":
            base = emu.settings.base_url
            shown[msg.sid] = [
                Shown(_same_origin(url, base), await _outbound_type(emu, url), _name(url))
                for url in msg.media
            ]
    return shown


def with_attachments(message: dict[str, Any], shown: dict[str, list[Shown]]) -> dict[str, Any]:
    """A message resource plus `attachments` for the template."""
    return {**message, "attachments": shown.get(str(message["sid"]), [])}


def _same_origin(url: str, base: str) -> str:
    # relaydesk's own public files load from the page's origin whatever host it was opened on.
    return url[len(base) :] if url.startswith(base + "/") else url


def _name(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[-1] or url


async def _outbound_type(emu: Emulator, url: str) -> str:
    """The type by the URL's extension, else what the server says (as Twilio fetches it)."""
    guessed = mimetypes.guess_type(urlsplit(url).path)[0]
    if guessed:
        return content_type_for(guessed, None)
    if url in _probed:
        return _probed[url]
    fallback = "application/octet-stream"
    try:
        declared = await run_in_threadpool(_declared_type, emu.outbound, url)
    except netguard.BlockedAddress as exc:
        log.warning("sandbox: media URL %s not fetched: %s", shown(url), exc)
        return fallback  # not remembered: the setting may change
    except (urllib3.exceptions.HTTPError, OSError):
        return fallback  # not remembered: the file may appear later
    found = content_type_for(declared, url) if declared is not None else fallback
    if len(_probed) >= _PROBED_MAX:
        _probed.clear()
    _probed[url] = found
    return found


def _declared_type(outbound: Outbound, url: str) -> str | None:
    """The Content-Type the file's server answers with (None for an error status).

    Each redirect hop passes the network guard again; the body is never read.
    """
    for _ in range(PROBE_REDIRECTS + 1):
        answer = outbound.request("GET", url, timeout=PROBE_TIMEOUT, preload_content=False)
        try:
            location = answer.headers.get("location")
            if answer.status in REDIRECT_CODES and location:
                url = urljoin(url, location)
                continue
            return answer.headers.get("content-type", "") if 200 <= answer.status < 300 else None
        finally:
            answer.close()  # the connection is dropped, not reused with an unread body
            answer.release_conn()
    return None
