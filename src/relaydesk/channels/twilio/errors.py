"""Twilio error codes: what they mean to a person, and whether retrying can help."""

from __future__ import annotations

from relaydesk.core.i18n import N_

# Meanings condensed from Twilio's error pages (https://www.twilio.com/docs/api/errors/CODE).
# Kept as a message's error_message, in English; marked so the panel shows them translated.
ERROR_MEANINGS: dict[int, str] = {
    11200: N_("Twilio could not reach the webhook URL or got an error from it"),
    20003: N_("Authentication failed: check the Account SID and auth token"),
    20404: N_("The requested resource was not found at Twilio"),
    20429: N_("Too many requests to Twilio's API at once; retried after a pause"),
    21211: N_("The 'To' number is not a valid phone number"),
    21212: N_("The 'From' number is not a valid phone number or short code"),
    21408: N_("Sending to this country is not enabled (Messaging Geo Permissions)"),
    21602: N_("The message needs a body, media or a content template"),
    21603: N_("A 'From' number or Messaging Service is required"),
    21606: N_("The 'From' number cannot send to this destination"),
    21610: N_("The recipient replied STOP and has unsubscribed from this sender"),
    21611: N_("The sender's queue is full (over 10 hours of messages waiting)"),
    21612: N_("Twilio cannot route a message from this sender to this number"),
    21614: N_("The 'To' number is not a mobile number (landline or unreachable)"),
    21617: N_("The message body is longer than 1,600 characters"),
    21620: N_("A media URL is invalid or cannot be fetched (not a public http(s) address)"),
    21654: N_("ContentVariables were given without a ContentSid"),
    21655: N_("The template (ContentSid) does not exist in this Twilio account"),
    21656: N_("The template variables (ContentVariables) are invalid"),
    30001: N_("Queue overflow: too many messages were waiting for this sender"),
    30002: N_("The Twilio account is suspended"),
    30003: N_("The handset is unreachable (switched off, no signal or cannot receive SMS)"),
    30004: N_("The message was blocked by the recipient or their carrier"),
    30005: N_("Unknown handset: the number may no longer exist"),
    30006: N_("Landline or unreachable carrier"),
    30007: N_("The carrier filtered the message as spam or against its policy"),
    30008: N_("Unknown delivery error reported by the carrier"),
    30034: N_("The US A2P 10DLC campaign for this sender is not registered"),
    30036: N_("The message expired in the queue before it could be sent"),
    63016: N_("Outside the WhatsApp 24-hour window: only approved templates can be sent"),
    63017: N_("The account's messages-per-second limit was exceeded"),
}

# Errors that will fail the same way on every retry.
PERMANENT_CODES = {
    20003,
    20404,
    21211,
    21212,
    21408,
    21602,
    21603,
    21606,
    21610,
    21612,
    21614,
    21617,
    21620,
    21654,
    21655,
    21656,
    30002,
    30004,
    30005,
    30006,
    30007,
    30034,
    63016,
}


def describe_error(code: int | None) -> str | None:
    """A sentence a person understands for a Twilio error code, or None if unknown."""
    if code is None:
        return None
    return ERROR_MEANINGS.get(code) or N_("Twilio error %(code)s") % {"code": code}


def is_permanent(code: int | None) -> bool:
    """True when retrying the same request cannot succeed."""
    return code in PERMANENT_CODES
