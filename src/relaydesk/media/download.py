"""Fetching a received file from Twilio: credentials to Twilio's API host only.

Twilio keeps media behind HTTP basic auth on its API host and answers with a redirect
to a short-lived signed address on its CDN. The account's credentials go with the
first request only, and only when it is addressed to the account's own media path on
the API host; every redirect is followed without them, and a redirect into this
server's own network is refused (except to the built-in emulator in sandbox mode).
A webhook that names any other address is not fetched at all.

Failures are VendorErrors: transient ones (no answer, 429, 5xx; a GET, so nothing is
ambiguous) are tried again by the media queue, permanent ones end on the attachment.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from relaydesk.core import netguard
from relaydesk.core.i18n import N_
from relaydesk.core.vendor import Kind, VendorError, status_kind

MAX_REDIRECTS = 5


class DownloadError(VendorError):
    """The file could not be had; `transient` says whether trying later may help."""

    def __init__(self, message: str, *, transient: bool = False, status: int | None = None) -> None:
        kind = Kind.TRANSIENT if transient else Kind.PERMANENT
        super().__init__(message, vendor="twilio", kind=kind, status=status)


class TooLarge(DownloadError):
    """The file is over the size limit (never retried)."""


@dataclass(frozen=True)
class Source:
    """Where Twilio's API lives for this account, and how to sign in to it."""

    api_base: str  # https://api.twilio.com, or the emulator's base
    account_sid: str
    auth_token: str
    sandbox: bool


@dataclass(frozen=True)
class Downloaded:
    data: bytes
    content_type: str


def media_prefix(source: Source) -> str:
    """The address prefix every media URL of this account starts with."""
    return f"{source.api_base.rstrip('/')}/2010-04-01/Accounts/{source.account_sid}/Messages/"


def download(url: str, source: Source, *, max_bytes: int, timeout: float) -> Downloaded:
    """The file at a Twilio media URL (DownloadError / TooLarge when it cannot be had)."""
    if not url.startswith(media_prefix(source)) or ".." in urlsplit(url).path:
        raise DownloadError(N_("the address is not one of this Twilio account's media files"))
    auth = (source.account_sid, source.auth_token)
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=True) as client:
        current = url
        for hop in range(MAX_REDIRECTS + 1):
            if hop:
                _check_redirect(current, source)
            try:
                # Credentials go with the first request only: never to a redirect target.
                with client.stream("GET", current, auth=auth if hop == 0 else None) as answer:
                    if answer.is_redirect:
                        location = answer.headers.get("location")
                        if not location:
                            raise DownloadError(N_("Twilio redirected without an address"))
                        current = urljoin(current, location)
                        continue
                    if answer.status_code != 200:
                        raise read_error(answer)
                    return Downloaded(_read_capped(answer, max_bytes), _type_of(answer))
            except httpx.TimeoutException:
                raise DownloadError(N_("Twilio sent the file too slowly"), transient=True) from None
            except httpx.TransportError as exc:
                unreachable = N_("could not reach Twilio: %(reason)s") % {"reason": exc}
                raise DownloadError(unreachable, transient=True) from None
    raise DownloadError(N_("more than %(count)d redirects") % {"count": MAX_REDIRECTS})


def _check_redirect(url: str, source: Source) -> None:
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise DownloadError(N_("Twilio redirected to a non-web address"))
    if source.sandbox:
        return  # the emulator runs on this machine and redirects to itself
    if scheme != "https":
        raise DownloadError(N_("Twilio redirected to an unencrypted address"))
    try:
        netguard.check_public_url(url, setting="TWILIO_MODE=sandbox")
    except netguard.BlockedAddress as exc:
        raise DownloadError(N_("refused redirect: %(reason)s") % {"reason": exc}) from None


def read_error(answer: httpx.Response) -> DownloadError:
    """Twilio's answer other than 200 as a DownloadError: 429 and 5xx transient."""
    code = answer.status_code
    if code in (401, 403):
        message = N_("Twilio refused the download (%(status)d): check the credentials") % {
            "status": code
        }
    elif code == 404:
        message = N_("Twilio no longer has this file (404)")
    else:
        message = N_("Twilio answered %(status)d") % {"status": code}
    return DownloadError(message, transient=status_kind(code) is Kind.TRANSIENT, status=code)


def _read_capped(answer: httpx.Response, max_bytes: int) -> bytes:
    declared = answer.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(
            N_("the file is %(size)d bytes, over the %(limit)d-byte limit")
            % {"size": int(declared), "limit": max_bytes}
        )
    chunks: list[bytes] = []
    total = 0
    for chunk in answer.iter_bytes():
        total += len(chunk)
        if total > max_bytes:
            raise TooLarge(N_("the file is over the %(limit)d-byte limit") % {"limit": max_bytes})
        chunks.append(chunk)
    return b"".join(chunks)


def _type_of(answer: httpx.Response) -> str:
    return str(answer.headers.get("content-type", "")).split(";")[0].strip().lower()
