"""The one phone-number normaliser: whatever people paste becomes E.164 or a clear reason."""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

from relaydesk.core.i18n import N_

WHATSAPP_PREFIX = "whatsapp:"
_JUNK = re.compile(r"[\s\u00a0\u200b().\-/]")
_E164 = re.compile(r"\+[1-9]\d{6,14}")


class InvalidNumber(ValueError):
    """The input is not a phone number; `reason` says why in plain words.

    `template` and `params` let a RelaydeskError carry the same text to the panel's
    catalogs: `Invalid(exc.template, params=exc.params, field=…)`.
    """

    template = N_("'%(raw)s' is not a valid phone number: %(reason)s")

    def __init__(self, raw: str, reason: str) -> None:
        super().__init__(f"'{raw}' is not a valid phone number: {reason}")
        self.raw = raw
        self.reason = reason
        self.params = {"raw": raw, "reason": reason}


@dataclass(frozen=True)
class Address:
    """A customer address: channel (sms or whatsapp) and E.164 number."""

    channel: str
    e164: str

    @property
    def twilio(self) -> str:
        """The address as Twilio writes it (`whatsapp:+48…` for WhatsApp)."""
        return f"{WHATSAPP_PREFIX}{self.e164}" if self.channel == "whatsapp" else self.e164


def normalize(raw: str, region: str = "PL") -> str:
    """E.164 form of `raw`; numbers without a country code are read in `region`."""
    text = (raw or "").strip()
    if not text:
        raise InvalidNumber(raw, N_("it is empty"))
    if len(text) > 40:
        raise InvalidNumber(raw[:40] + "…", N_("it is too long"))
    compact = _JUNK.sub("", text)
    if not re.fullmatch(r"\+?\d+", compact):
        raise InvalidNumber(raw, N_("it may contain only digits, spaces, brackets, dashes and '+'"))
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber(raw, str(exc.args[0]) if exc.args else N_("cannot be read")) from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidNumber(raw, N_("it has the wrong number of digits"))
    if not phonenumbers.is_valid_number(number):
        raise InvalidNumber(raw, N_("no such number exists in its country's numbering plan"))
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def parse_address(raw: str, region: str = "PL") -> Address:
    """Split an optional `whatsapp:` prefix off and normalise the number."""
    text = (raw or "").strip()
    if text.lower().startswith(WHATSAPP_PREFIX):
        return Address("whatsapp", normalize(text[len(WHATSAPP_PREFIX) :], region))
    return Address("sms", normalize(text, region))


def loose_e164(raw: str) -> str:
    """Best-effort E.164 for addresses Twilio gives us (never raises).

    Inbound webhooks must be stored even when the sender is a short code or an
    alphanumeric ID that no numbering plan knows.
    """
    text = (raw or "").strip()
    if text.lower().startswith(WHATSAPP_PREFIX):
        text = text[len(WHATSAPP_PREFIX) :]
    if _E164.fullmatch(text):
        return text  # what Twilio sends; parsing it again costs more than the whole insert
    try:
        number = phonenumbers.parse(text, None)
        return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    except phonenumbers.NumberParseException:
        return text[:20]
