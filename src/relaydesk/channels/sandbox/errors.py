"""Twilio-shaped API errors the emulator answers with: `{code, message, more_info, status}`."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

MORE_INFO = "https://www.twilio.com/docs/errors/{code}"

# Twilio's magic test numbers (https://www.twilio.com/docs/iam/test-credentials): a `To` or
# `From` here fails synchronously with the code Twilio gives, and nothing is stored.
MAGIC_TO: dict[str, tuple[int, str]] = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number: {to}, is not currently reachable via SMS."),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the "
        "'To' number: {to}.",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number {to} is not a valid mobile number"),
}
MAGIC_FROM: dict[str, tuple[int, str]] = {
    "+15005550001": (
        21212,
        "The 'From' number {from_} is not a valid phone number, shortcode, or alphanumeric "
        "sender ID.",
    ),
    "+15005550007": (
        21606,
        "The 'From' phone number provided is not a valid message-capable Twilio phone number "
        "for this destination/account",
    ),
    "+15005550008": (
        21611,
        "This 'From' number has exceeded the maximum number of queued messages",
    ),
}


class ApiError(Exception):
    """A request Twilio would refuse; rendered as Twilio's error JSON with `status`."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        """The JSON body Twilio sends for this error."""
        return {
            "code": self.code,
            "message": self.message,
            "more_info": MORE_INFO.format(code=self.code),
            "status": self.status,
        }

    def response(self) -> JSONResponse:
        """The HTTP answer for this error."""
        headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if self.status == 401 else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def unauthenticated() -> ApiError:
    """Missing or wrong credentials."""
    return ApiError(401, 20003, "Authenticate")


def not_found(path: str) -> ApiError:
    """An account or message the caller may not see, or that does not exist."""
    return ApiError(404, 20404, f"The requested resource {path} was not found")


def too_many_requests() -> ApiError:
    """The API rate knob was exceeded; safe to retry after backing off."""
    return ApiError(429, 20429, "Too Many Requests")


def bad_parameter(message: str) -> ApiError:
    """A parameter in the wrong format where Twilio documents no more specific code."""
    # 70002 "Bad request" is Twilio's documented code for malformed parameter values.
    return ApiError(400, 70002, message)
