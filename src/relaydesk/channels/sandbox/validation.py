"""Checks a CreateMessage form the way Twilio does, raising its error codes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from relaydesk.channels.sandbox.errors import MAGIC_FROM, MAGIC_TO, ApiError, bad_parameter

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
SHORT_CODE = re.compile(r"^\d{3,8}$")
ALPHA_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")
SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
MAX_BODY = 1600
MAX_MEDIA = 10


class FormLike(Protocol):
    """What Starlette's FormData offers: single values and repeated keys."""

    def get(self, key: str, /) -> object: ...

    def getlist(self, key: str) -> Sequence[object]: ...


@dataclass(frozen=True)
class CreateRequest:
    """A validated CreateMessage request; unknown parameters were ignored like Twilio does."""

    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    media_urls: tuple[str, ...]
    content_sid: str | None
    content_variables: str | None
    status_callback: str | None


def is_whatsapp(address: str | None) -> bool:
    """True for a `whatsapp:` channel address."""
    return bool(address) and str(address).startswith("whatsapp:")


def valid_phone(address: str) -> bool:
    """E.164, optionally behind the `whatsapp:` channel prefix."""
    return bool(E164.match(address.removeprefix("whatsapp:")))


def parse_create(form: FormLike) -> CreateRequest:
    """Validate the form of `POST .../Messages.json`; raise ApiError as Twilio would."""
    to = _text(form, "To", strip=True)
    from_ = _text(form, "From", strip=True)
    service = _text(form, "MessagingServiceSid", strip=True)
    body = _text(form, "Body") or ""
    media = tuple(v.strip() for v in form.getlist("MediaUrl") if isinstance(v, str) and v.strip())
    content_sid = _text(form, "ContentSid", strip=True)
    variables = _text(form, "ContentVariables")
    callback = _text(form, "StatusCallback", strip=True)

    if not to:
        raise ApiError(400, 21604, "A 'To' phone number is required.")
    if not (from_ or service):
        raise ApiError(
            400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message"
        )
    if variables and not content_sid:
        raise ApiError(400, 21654, "ContentSid Required")
    if content_sid and not CONTENT_SID.match(content_sid):
        raise ApiError(400, 21655, "The ContentSid is Invalid")
    if not (body or media or content_sid):
        raise ApiError(400, 21602, "Message body is required.")
    if len(body) > MAX_BODY:
        raise ApiError(
            400, 21617, "The concatenated message body exceeds the 1600 character limit."
        )
    _check_to(to)
    if from_:
        _check_from(from_)
    if service and not SERVICE_SID.match(service):
        raise bad_parameter(f"MessagingServiceSid '{service}' is not a valid Messaging Service SID")
    _check_urls(media, callback)
    return CreateRequest(
        to=to,
        from_=from_,
        messaging_service_sid=service,
        body=body,
        media_urls=media,
        content_sid=content_sid,
        content_variables=variables,
        status_callback=callback,
    )


def _check_to(to: str) -> None:
    if not valid_phone(to):
        raise ApiError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
    magic = MAGIC_TO.get(to.removeprefix("whatsapp:"))
    if magic:
        raise ApiError(400, magic[0], magic[1].format(to=to))


def _check_from(from_: str) -> None:
    bare = from_.removeprefix("whatsapp:")
    magic = MAGIC_FROM.get(bare)
    if magic:
        raise ApiError(400, magic[0], magic[1].format(from_=from_))
    if not (valid_phone(from_) or SHORT_CODE.match(bare) or ALPHA_SENDER.match(bare)):
        raise ApiError(
            400,
            21212,
            f"The 'From' number {from_} is not a valid phone number, shortcode, or alphanumeric "
            "sender ID.",
        )


def _check_urls(media: tuple[str, ...], callback: str | None) -> None:
    if len(media) > MAX_MEDIA:
        raise bad_parameter(f"At most {MAX_MEDIA} MediaUrl values are allowed")
    for url in (*media, *([callback] if callback else [])):
        if not url.startswith(("http://", "https://")):
            raise bad_parameter(f"'{url}' is not an absolute http(s) URL")


def _text(form: FormLike, key: str, *, strip: bool = False) -> str | None:
    value = form.get(key)
    if not isinstance(value, str):
        return None
    value = value.strip() if strip else value
    return value or None
