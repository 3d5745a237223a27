"""What the simulated customer sends: text, files, a location or a button tap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.datastructures import FormData, UploadFile

from relaydesk.channels.sandbox.media import (
    MAX_FILES,
    MAX_FILES_WHATSAPP,
    MAX_MESSAGE_BYTES,
    Upload,
    content_type_for,
)
from relaydesk.channels.sandbox.validation import is_whatsapp, valid_phone
from relaydesk.core.i18n import N_

MEDIA_FIELD = "media"


class PhoneMessage(BaseModel):
    """What the simulated customer types: from their number to ours."""

    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    to: str | None = None
    body: str = Field(default="", max_length=1600)
    profile_name: str | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    address: str | None = Field(default=None, max_length=256)
    label: str | None = Field(default=None, max_length=256)
    button_text: str | None = Field(default=None, max_length=256)
    button_payload: str | None = Field(default=None, max_length=1024)

    @field_validator("from_")
    @classmethod
    def _from(cls, value: str) -> str:
        return _checked_phone(value)

    @field_validator("to")
    @classmethod
    def _to(cls, value: str | None) -> str | None:
        return _checked_phone(value) if value and value.strip() else None

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("a location needs both latitude and longitude")
        if (self.address or self.label) and self.latitude is None:
            raise ValueError("address and label belong to a location: give latitude and longitude")
        if self.button_payload and not self.button_text:
            raise ValueError("a button reply needs button_text")
        return self

    @property
    def whatsapp(self) -> bool:
        """True when either end is a `whatsapp:` address."""
        return is_whatsapp(self.from_) or is_whatsapp(self.to)

    @property
    def text(self) -> str:
        """The Body Twilio reports: what was typed, else the tapped button's text."""
        return self.body or self.button_text or ""

    def has_content(self, uploads: Sequence[Upload] = ()) -> bool:
        """False for a message with nothing in it (no text, file, location or button)."""
        return bool(self.text.strip() or uploads or self.latitude is not None)

    def extra_params(self) -> dict[str, str]:
        """Webhook parameters for a location or a button reply."""
        params: dict[str, str] = {}
        if self.latitude is not None and self.longitude is not None:
            params["Latitude"] = repr(self.latitude)
            params["Longitude"] = repr(self.longitude)
            if self.address:
                params["Address"] = self.address
            if self.label:
                params["Label"] = self.label
        if self.button_text:
            params["ButtonText"] = self.button_text
            params["ButtonPayload"] = self.button_payload or self.button_text
            params["ButtonType"] = "REPLY"
        return params


class PhoneInputError(Exception):
    """A message the phone could not send; `status` is 413 for size, else 422.

    `message` is a catalog template filled in with `params`; the panel passes both on
    (`Invalid(exc.template, params=exc.params)`) so the phone's notice is translated.
    """

    def __init__(
        self,
        status: int,
        message: str,
        field: str = MEDIA_FIELD,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.template = message
        self.params = dict(params or {})
        self.message = message % self.params
        super().__init__(self.message)
        self.status = status
        self.field = field


def _checked_phone(value: str) -> str:
    value = value.strip()
    if not valid_phone(value):
        raise ValueError("must be an E.164 number such as +48600100200 or whatsapp:+48...")
    return value


def form_fields(form: FormData) -> dict[str, Any]:
    """The text fields of a form, blanks left out (an empty `latitude` means none)."""
    return {
        key: value
        for key, value in form.multi_items()
        if key != MEDIA_FIELD and isinstance(value, str) and value != ""
    }


async def read_uploads(files: Sequence[str | UploadFile]) -> list[Upload]:
    """The attached files, sizes checked before reading; empty file inputs are skipped."""
    chosen = [f for f in files if isinstance(f, UploadFile) and (f.filename or f.size)]
    if len(chosen) > MAX_FILES:
        raise PhoneInputError(
            422,
            N_("At most %(count)s files can be sent in one message"),
            params={"count": MAX_FILES},
        )
    too_large = PhoneInputError(413, N_("The files are larger than 16 MB together"))
    if sum(f.size or 0 for f in chosen) > MAX_MESSAGE_BYTES:
        raise too_large
    uploads: list[Upload] = []
    total = 0
    for f in chosen:
        data = await f.read()
        total += len(data)
        if total > MAX_MESSAGE_BYTES:
            raise too_large
        declared = f.headers.get("content-type") if f.headers else None
        uploads.append(Upload(f.filename, content_type_for(declared, f.filename), data))
    return uploads


def check_message(message: PhoneMessage, uploads: Sequence[Upload]) -> None:
    """Raise PhoneInputError for an empty message or too many files for WhatsApp."""
    if not message.has_content(uploads):
        raise PhoneInputError(422, N_("Type a message, attach a file or share a location"), "body")
    if message.whatsapp and len(uploads) > MAX_FILES_WHATSAPP:
        raise PhoneInputError(422, N_("WhatsApp carries one file per message"))
