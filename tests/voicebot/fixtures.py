"""Realistic ElevenLabs conversations for a month, with a fixed mix (same seed, same data).

`month_of_conversations(n)` returns `Call`s: the details object ElevenLabs would answer
(GetConversationResponseModel) and the direction its list shows. The mix covers inbound
and outbound calls, success/failure/unknown, Twilio and SIP trunking phone_call metadata,
numbers only in dynamic variables or only in `metadata.body`, no phone data at all,
transfers, technical errors, ratings, likes, evaluation criteria, data collection, costs,
and short and long calls.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

AGENTS = ("agent_sales_01", "agent_support_02")
AGENT_NAMES = {"agent_sales_01": "Sprzedaż", "agent_support_02": "Wsparcie"}
AGENT_NUMBERS = {"agent_sales_01": "+48223456789", "agent_support_02": "+48587654321"}
PHONE_KINDS = ("twilio", "sip_trunking", "dynamic_variables", "metadata_body", "none")
CRITERIA = ("greeting", "booking_confirmed")
TERMINATIONS = (
    "Call ended by remote party",
    "end_call tool was called.",
    "Client disconnected: 1000",
    "",
)


@dataclass
class Call:
    """One fixture conversation: its details and what the list says its direction is."""

    details: dict[str, Any]
    direction: str
    phone_kind: str
    customer: str  # the customer's E.164 number (whether or not the API gives it)

    @property
    def conversation_id(self) -> str:
        return str(self.details["conversation_id"])


def customer_number(k: int) -> str:
    """A valid Polish mobile number; k picks one of a few hundred customers."""
    return f"+48601{(k * 7919) % 1_000_000:06d}"


def month_start(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp())


def month_of_conversations(
    n: int, *, year: int = 2026, month: int = 3, seed: int = 8, days: int = 28
) -> list[Call]:
    """`n` conversations spread over the first `days` days of the month, two agents."""
    rng = random.Random(seed)
    start0 = month_start(year, month)
    return [_call(i, rng, start0 + (i * days * 86_400) // max(n, 1)) for i in range(n)]


def _duration(rng: random.Random, i: int) -> int:
    if i % 5 == 1:
        return rng.randint(3, 29)  # short
    if i % 7 == 3:
        return rng.randint(301, 900)  # long
    return rng.randint(30, 300)


def _call(i: int, rng: random.Random, start: int) -> Call:
    agent = AGENTS[i % 2]
    direction = "outbound" if i % 4 == 2 else "inbound"
    outcome = ("success", "success", "failure", "unknown", "success")[rng.randrange(5)]
    kind = PHONE_KINDS[(i // 2) % len(PHONE_KINDS)]
    customer = customer_number(rng.randrange(400))
    ours = AGENT_NUMBERS[agent]
    duration = _duration(rng, i)
    transfer = ("transfer_to_number", "transfer_to_agent")[i % 2] if i % 10 == 7 else None
    failed = i % 20 == 11
    error = {"code": 1011, "reason": "LLM timed out"} if i % 25 == 13 else None
    termination = TERMINATIONS[rng.randrange(len(TERMINATIONS))]
    transcript = _transcript(rng, i, duration, transfer)
    metadata: dict[str, Any] = {
        "start_time_unix_secs": start + rng.randrange(3600),
        "call_duration_secs": duration,
        "cost": rng.randint(50, 2500),
        "termination_reason": termination,
        "feedback": {"overall_score": None, "likes": 0, "dislikes": 0},
        "error": error,
        "main_language": "pl",
    }
    likes = sum(1 for t in transcript if (t.get("feedback") or {}).get("score") == "like")
    dislikes = sum(1 for t in transcript if (t.get("feedback") or {}).get("score") == "dislike")
    metadata["feedback"] = {"overall_score": None, "likes": likes, "dislikes": dislikes}
    if i % 3 == 0:
        metadata["feedback"]["rating"] = 1 + rng.randrange(5)  # newer API: a 1–5 rating
    client_data: dict[str, Any] = {
        "dynamic_variables": {"system__conversation_id": f"conv_{i:06d}"}
    }
    caller, called = (ours, customer) if direction == "outbound" else (customer, ours)
    if kind in ("twilio", "sip_trunking"):
        call: dict[str, Any] = {
            "direction": direction,
            "phone_number_id": f"pn_{agent}",
            "agent_number": ours,
            # SIP trunks often give the number without '+'.
            "external_number": customer if kind == "twilio" else customer.lstrip("+"),
            "type": kind,
            "call_sid": f"CA{i:032d}",
        }
        if kind == "twilio":
            call["stream_sid"] = f"MZ{i:032d}"
        metadata["phone_call"] = call
        metadata["conversation_initiation_source"] = "twilio" if kind == "twilio" else "sip_trunk"
    elif kind == "dynamic_variables":
        client_data["dynamic_variables"] |= {
            "system__caller_id": caller,
            "system__called_number": called,
        }
    elif kind == "metadata_body":
        if i % 4 < 2:
            metadata["body"] = {"From": caller, "To": called}
        else:
            metadata["body"] = {
                "from_number": f"sip:{caller}@trunk.example.com",
                "to_number": called,
            }
    analysis = {
        "call_successful": outcome,
        "transcript_summary": f"Rozmowa {i}: klient pyta o rezerwację stolika.",
        "call_summary_title": f"Rezerwacja #{i}",
        "evaluation_criteria_results": {
            c: {
                "criteria_id": c,
                "result": ("success", "failure", "unknown")[rng.randrange(3)],
                "rationale": "Ocena modelu.",
            }
            for c in CRITERIA[: 1 + i % 2]
        },
        "data_collection_results": {
            "party_size": {
                "data_collection_id": "party_size",
                "value": rng.randint(1, 8),
                "rationale": "Klient podał liczbę osób.",
            }
        },
    }
    details: dict[str, Any] = {
        "agent_id": agent,
        "agent_name": AGENT_NAMES[agent],
        "conversation_id": f"conv_{i:06d}",
        "status": "failed" if failed else "done",
        "user_id": None,
        "transcript": transcript,
        "metadata": metadata,
        "analysis": analysis,
        "conversation_initiation_client_data": client_data,
        "has_audio": True,
        "has_user_audio": True,
        "has_response_audio": True,
    }
    return Call(details, direction, kind, customer)


def _transcript(
    rng: random.Random, i: int, duration: int, transfer: str | None
) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    count = max(2, min(24, duration // 15))
    for n in range(count):
        role = "agent" if n % 2 == 0 else "user"
        turn: dict[str, Any] = {
            "role": role,
            "message": "Dzień dobry, w czym mogę pomóc?" if n == 0 else f"Wypowiedź {n}.",
            "time_in_call_secs": n * duration // count,
            "tool_calls": [],
            "tool_results": [],
        }
        if role == "agent" and rng.random() < 0.08:
            score = "like" if rng.random() < 0.7 else "dislike"
            turn["feedback"] = {"score": score, "time_in_call_secs": turn["time_in_call_secs"]}
        turns.append(turn)
    if transfer:
        turns[-1 if turns[-1]["role"] == "agent" else -2]["tool_calls"] = [
            {
                "type": "system",
                "request_id": f"req_{i}",
                "tool_name": transfer,
                "params_as_json": '{"reason": "klient prosi o konsultanta"}',
                "tool_has_been_called": True,
            }
        ]
    return turns
