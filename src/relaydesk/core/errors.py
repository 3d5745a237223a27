"""Domain errors that carry their HTTP status, a message a person understands and a code.

The code is the machine-readable half of the API's error body `{detail, code}`: each
class has a stable one, and a raising site may pass a more specific one (`code=`) where
a program needs to tell cases apart (e.g. "csrf" among the Forbidden errors). Codes are
part of the API: once answered, never renamed.

A message may be a template with `params` (`Invalid(N_("%(name)s is taken"),
params={"name": …})`): the API answers it filled in, in English, and the panel
translates the template through its catalogs and fills in the same values (a value that
is itself a catalog entry, or a list of them, is translated too). `N_` (core.i18n)
marks the template for `make translations`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class RelaydeskError(Exception):
    """Base of every error shown to API clients and panel users."""

    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        /,
        *,
        code: str | None = None,
        params: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        self.template = message if params is not None else None
        self.params = dict(params or {})
        if params is not None:
            message = message % {k: _english(v) for k, v in self.params.items()}
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        # More fields for the API's body (e.g. `field`, `twilio_code`).
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        """The JSON body the API answers with."""
        return {"detail": self.message, "code": self.code, **self.extra}


def _english(value: Any) -> Any:
    """A template's value as the API shows it: a list becomes "a, b"."""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return value


class NotFound(RelaydeskError):
    """The thing asked for does not exist."""

    status_code = 404
    code = "not_found"


class Invalid(RelaydeskError):
    """The request is well-formed but its content is wrong."""

    status_code = 422
    code = "invalid"


class Conflict(RelaydeskError):
    """The request clashes with the state of things (e.g. an opted-out contact)."""

    status_code = 409
    code = "conflict"


class OptedOut(Conflict):
    """The customer unsubscribed: nothing may be sent until they text START."""

    code = "opted_out"


class Unauthorized(RelaydeskError):
    """No valid credentials."""

    status_code = 401
    code = "unauthorized"


class Forbidden(RelaydeskError):
    """Valid credentials without the needed role."""

    status_code = 403
    code = "forbidden"


class WindowClosed(Invalid):
    """WhatsApp's 24-hour window with the customer is closed: only a template may go."""

    code = "whatsapp_window_closed"


class TooLarge(RelaydeskError):
    """An upload over its size limit."""

    status_code = 413
    code = "too_large"


class Gone(RelaydeskError):
    """The thing existed but is no longer available (an expired link)."""

    status_code = 410
    code = "gone"


class Unavailable(RelaydeskError):
    """The request could not be completed now (the database refused it); nothing changed."""

    status_code = 503
    code = "unavailable"


class VendorRefused(RelaydeskError):
    """Twilio permanently refused a message; carries Twilio's code and its meaning."""

    status_code = 422
    code = "twilio_error"


class ProviderFailed(RelaydeskError):
    """An AI provider could not answer (down, refused the key, unknown model)."""

    status_code = 502
    code = "provider_error"


class NotConfigured(RelaydeskError):
    """A feature needs configuration that is missing (e.g. an AI provider's key)."""

    status_code = 409
    code = "not_configured"
