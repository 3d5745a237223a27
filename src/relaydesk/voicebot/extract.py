"""A conversation from ElevenLabs (list summary and/or details) as VoiceConversation columns.

Every KPI is computed in SQL from these columns, so the definitions live here, once:
what counts as a transfer, an error, a dropout, and where the phone numbers come from.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

import phonenumbers

from relaydesk.channels.twilio.numbers import InvalidNumber, normalize
from relaydesk.core.config import get_settings

TRANSFER_TOOLS = ("transfer_to_number", "transfer_to_agent")
SHORT_CALL_SECS = 30
# Phrases of `metadata.termination_reason` that mean the caller's side ended the call.
CALLER_ENDED = (
    "remote party",
    "client disconnected",
    "client ended",
    "user ended",
    "user hung",
    "user left",
    "user disconnected",
    "caller ended",
    "caller hung",
    "customer ended",
    "hung up",
    "hangup",
)


def N_(text: str) -> str:
    """Marks a sentence for the translation catalogs; translated where it is shown."""
    return text


ERROR_TEXT = N_(
    "A technical error: ElevenLabs marked the conversation as failed (status 'failed') "
    "or recorded an error in its metadata."
)
TRANSFER_TEXT = N_(
    "A transfer: the agent called the transfer_to_number or transfer_to_agent tool during the call."
)
DROPOUT_TEXT = N_(
    "A dropout: a call that did not reach its goal (the analysis did not mark it a "
    "success), was not transferred and had no technical error, and either the caller "
    "ended it (the termination reason says the remote party, user or client hung up or "
    "disconnected) or it lasted under %(seconds)d seconds."
)
ERROR_DEFINITION = ERROR_TEXT
TRANSFER_DEFINITION = TRANSFER_TEXT
DROPOUT_DEFINITION = DROPOUT_TEXT % {"seconds": SHORT_CALL_SECS}

# The columns that only a conversation's details can fill (a refetch updates these).
DETAIL_COLUMNS = (
    "status",
    "direction",
    "call_successful",
    "termination_reason",
    "agent_messages",
    "cost",
    "rating",
    "likes",
    "dislikes",
    "has_error",
    "transferred",
    "dropout",
    "customer_number",
    "agent_number",
    "phone_source",
    "title",
    "summary",
)

_SCHEME = re.compile(r"^(whatsapp|sips?|tel):", re.IGNORECASE)
_JUNK = re.compile(r"[\s\u00a0().\-/]")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


def e164(raw: Any) -> str | None:
    """A phone number in E.164 (prefixes like whatsapp:/sip: and @host removed), else None."""
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        return None
    text = _SCHEME.sub("", str(raw).strip())
    text = text.split("@", 1)[0].split(";", 1)[0]
    compact = _JUNK.sub("", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not re.fullmatch(r"\+?\d{6,15}", compact):
        return None  # "anonymous", a client id, a SIP user name...
    if compact.startswith("+"):
        return compact if compact[1] != "0" else None
    # Without '+': international digits (what trunks send) if that is a real number,
    # else a national number of the default region.
    try:
        if phonenumbers.is_valid_number(phonenumbers.parse("+" + compact, None)):
            return "+" + compact
    except phonenumbers.NumberParseException:
        pass
    try:
        return normalize(compact, get_settings().default_region)
    except InvalidNumber:
        return None if compact.startswith("0") else "+" + compact


def phone_numbers(
    details: dict[str, Any] | None, direction: str | None
) -> tuple[str | None, str | None, str | None]:
    """(customer number, our number, source) from the first place that has a number."""
    details = _dict(details)
    metadata = _dict(details.get("metadata"))
    call = _dict(metadata.get("phone_call"))
    customer = e164(call.get("external_number"))
    if customer:
        return customer, e164(call.get("agent_number")), "phone_call"
    outbound = (direction or call.get("direction")) == "outbound"
    variables = _dict(
        _dict(details.get("conversation_initiation_client_data")).get("dynamic_variables")
    )
    caller, called = (
        e164(variables.get("system__caller_id")),
        e164(variables.get("system__called_number")),
    )
    if outbound:  # on an outbound call the caller is us
        caller, called = called, caller
    if caller:
        return caller, called, "dynamic_variables"
    body = _dict(metadata.get("body"))
    sender = e164(body.get("From") or body.get("from_number"))
    receiver = e164(body.get("To") or body.get("to_number"))
    if outbound:
        sender, receiver = receiver, sender
    if sender:
        return sender, receiver, "metadata_body"
    return None, None, None


def _transcript(details: dict[str, Any]) -> list[dict[str, Any]]:
    turns = details.get("transcript")
    return [t for t in turns if isinstance(t, dict)] if isinstance(turns, list) else []


def _transferred(turns: list[dict[str, Any]]) -> bool:
    for turn in turns:
        for call in turn.get("tool_calls") or []:
            if isinstance(call, dict) and call.get("tool_name") in TRANSFER_TOOLS:
                return True
    return False


def caller_ended(termination_reason: str | None) -> bool:
    """Whether the termination reason says the caller's side ended the call."""
    reason = (termination_reason or "").lower()
    return any(phrase in reason for phrase in CALLER_ENDED)


def is_dropout(
    *,
    call_successful: str,
    transferred: bool,
    has_error: bool,
    termination_reason: str | None,
    duration_secs: int,
) -> bool:
    """DROPOUT_DEFINITION as code."""
    if call_successful == "success" or transferred or has_error:
        return False
    return caller_ended(termination_reason) or duration_secs < SHORT_CALL_SECS


def _feedback(
    metadata: dict[str, Any], turns: list[dict[str, Any]]
) -> tuple[float | None, int, int]:
    feedback = _dict(metadata.get("feedback"))
    rating_raw = feedback.get("rating")
    rating = (
        float(rating_raw) if isinstance(rating_raw, int | float) and 1 <= rating_raw <= 5 else None
    )
    if "likes" in feedback or "dislikes" in feedback:
        return rating, _int(feedback.get("likes")) or 0, _int(feedback.get("dislikes")) or 0
    scores = [_dict(t.get("feedback")).get("score") for t in turns]
    return rating, scores.count("like"), scores.count("dislike")


def row_from(summary: dict[str, Any] | None, details: dict[str, Any] | None) -> dict[str, Any]:
    """VoiceConversation column values from a list summary, the details, or both."""
    s, d = _dict(summary), _dict(details)
    metadata = _dict(d.get("metadata"))
    analysis = _dict(d.get("analysis"))
    call = _dict(metadata.get("phone_call"))
    turns = _transcript(d)
    start = _int(s.get("start_time_unix_secs"))
    if start is None:
        start = _int(metadata.get("start_time_unix_secs")) or 0
    duration = _int(s.get("call_duration_secs"))
    if duration is None:
        duration = _int(metadata.get("call_duration_secs")) or 0
    message_count = _int(s.get("message_count"))
    status = str(d.get("status") or s.get("status") or "done")
    direction = s.get("direction") or call.get("direction")
    direction = direction if direction in ("inbound", "outbound") else None
    outcome = analysis.get("call_successful") or s.get("call_successful") or "unknown"
    outcome = outcome if outcome in ("success", "failure", "unknown") else "unknown"
    termination = _text(metadata.get("termination_reason") or s.get("termination_reason"))
    cost = metadata.get("cost")
    has_error = status == "failed" or bool(metadata.get("error"))
    transferred = _transferred(turns) or any(t in TRANSFER_TOOLS for t in s.get("tool_names") or [])
    rating, likes, dislikes = _feedback(metadata, turns)
    if rating is None and isinstance(s.get("rating"), int | float) and 1 <= s["rating"] <= 5:
        rating = float(s["rating"])
    customer, ours, source = phone_numbers(d, direction)
    return {
        "conversation_id": str(s.get("conversation_id") or d.get("conversation_id")),
        "agent_id": str(s.get("agent_id") or d.get("agent_id") or ""),
        "agent_name": _text(s.get("agent_name") or d.get("agent_name")),
        "status": status[:16],
        "start_time": datetime.fromtimestamp(start, UTC),
        "day": datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d"),
        "duration_secs": duration,
        "message_count": message_count if message_count is not None else len(turns),
        "agent_messages": sum(1 for t in turns if t.get("role") == "agent"),
        "direction": direction,
        "call_successful": outcome,
        "termination_reason": termination,
        "cost": float(cost)
        if isinstance(cost, int | float) and not isinstance(cost, bool)
        else None,
        "rating": rating,
        "likes": likes,
        "dislikes": dislikes,
        "has_error": has_error,
        "transferred": transferred,
        "dropout": is_dropout(
            call_successful=outcome,
            transferred=transferred,
            has_error=has_error,
            termination_reason=termination,
            duration_secs=duration,
        ),
        "customer_number": customer,
        "agent_number": ours,
        "phone_source": source,
        "title": _text(analysis.get("call_summary_title") or s.get("call_summary_title")),
        "summary": _text(analysis.get("transcript_summary") or s.get("transcript_summary")),
    }


def evaluations_from(details: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(criterion, success|failure|unknown) for each evaluation criterion in the analysis."""
    results = _dict(_dict(_dict(details).get("analysis")).get("evaluation_criteria_results"))
    out: dict[str, str] = {}
    for key, value in results.items():
        item = _dict(value)
        result = item.get("result")
        out[str(item.get("criteria_id") or key)[:100]] = (
            result if result in ("success", "failure") else "unknown"
        )
    return sorted(out.items())


_FINGERPRINT_FIELDS = (
    "status",
    "start_time_unix_secs",
    "call_duration_secs",
    "message_count",
    "call_successful",
    "call_summary_title",
    "transcript_summary",
    "direction",
    "termination_reason",
    "rating",
    "tool_names",
)


def list_fingerprint(summary: dict[str, Any]) -> str:
    """sha256 of the list fields that change when a conversation changes."""
    picked = {name: summary.get(name) for name in _FINGERPRINT_FIELDS}
    encoded = json.dumps(picked, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()
