"""Turning ElevenLabs conversations into rows: numbers per provider, outcomes, definitions."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from relaydesk.channels.twilio.numbers import loose_e164, parse_address
from relaydesk.voicebot import extract
from tests.fakes.elevenlabs import elevenlabs_spec, summary_of
from tests.voicebot.fixtures import month_of_conversations

CUSTOMER = "+48601234567"
OURS = "+48223456789"


def details(**metadata: Any) -> dict[str, Any]:
    """A minimal valid conversation whose metadata gets the given fields."""
    base: dict[str, Any] = {
        "agent_id": "agent_a",
        "conversation_id": "conv_1",
        "status": "done",
        "transcript": [
            {"role": "agent", "message": "Dzień dobry", "time_in_call_secs": 0},
            {"role": "user", "message": "Chcę zarezerwować", "time_in_call_secs": 3},
            {"role": "agent", "message": "Na kiedy?", "time_in_call_secs": 5},
        ],
        "metadata": {"start_time_unix_secs": 1_772_323_200, "call_duration_secs": 95},
        "analysis": {
            "call_successful": "success",
            "transcript_summary": "Rezerwacja na piątek.",
            "call_summary_title": "Rezerwacja",
        },
        "has_audio": True,
        "has_user_audio": True,
        "has_response_audio": True,
    }
    base["metadata"].update(metadata)
    return base


def phone_call(kind: str, direction: str = "inbound", external: str = CUSTOMER) -> dict[str, Any]:
    call = {
        "direction": direction,
        "phone_number_id": "pn_1",
        "agent_number": OURS,
        "external_number": external,
        "type": kind,
        "call_sid": "CA1",
    }
    return call | ({"stream_sid": "MZ1"} if kind == "twilio" else {})


def test_fixture_conversations_and_their_list_entries_fit_the_openapi_document() -> None:
    spec = elevenlabs_spec()
    _, one = spec.operation("GET", "/v1/convai/conversations/conv_1") or ("", {})
    _, many = spec.operation("GET", "/v1/convai/conversations") or ("", {})
    calls = month_of_conversations(120)
    for call in calls:
        assert spec.response_errors(one, 200, call.details) == []
    page = {
        "conversations": [summary_of(c.details, c.direction) for c in calls],
        "has_more": False,
        "next_cursor": None,
    }
    assert spec.response_errors(many, 200, page) == []


@pytest.mark.parametrize("kind", ["twilio", "sip_trunking"])
def test_inbound_phone_call_gives_the_external_number_as_the_customer(kind: str) -> None:
    row = extract.row_from(None, details(phone_call=phone_call(kind)))

    assert (row["customer_number"], row["agent_number"]) == (CUSTOMER, OURS)
    assert row["phone_source"] == "phone_call"
    assert row["direction"] == "inbound"


def test_outbound_phone_call_still_gives_the_external_number_as_the_customer() -> None:
    row = extract.row_from(None, details(phone_call=phone_call("twilio", "outbound")))

    assert (row["customer_number"], row["agent_number"], row["direction"]) == (
        CUSTOMER,
        OURS,
        "outbound",
    )


def test_sip_number_without_plus_or_with_a_sip_uri_becomes_e164() -> None:
    for external in ("48601234567", "sip:+48601234567@trunk.example.com", "0048 601 234 567"):
        row = extract.row_from(
            None, details(phone_call=phone_call("sip_trunking", external=external))
        )
        assert row["customer_number"] == CUSTOMER, external


def test_dynamic_variables_give_the_caller_when_there_is_no_phone_call() -> None:
    data = details()
    data["conversation_initiation_client_data"] = {
        "dynamic_variables": {"system__caller_id": CUSTOMER, "system__called_number": OURS}
    }

    inbound = extract.row_from({"direction": "inbound"}, data)
    outbound = extract.row_from({"direction": "outbound"}, data | {})
    swapped = copy.deepcopy(data)
    swapped["conversation_initiation_client_data"]["dynamic_variables"] = {
        "system__caller_id": OURS,
        "system__called_number": CUSTOMER,
    }

    assert (inbound["customer_number"], inbound["agent_number"]) == (CUSTOMER, OURS)
    assert inbound["phone_source"] == "dynamic_variables"
    # On an outbound call the caller id is our own number.
    assert (outbound["customer_number"], outbound["agent_number"]) == (OURS, CUSTOMER)
    assert extract.row_from({"direction": "outbound"}, swapped)["customer_number"] == CUSTOMER


def test_metadata_body_is_the_last_place_looked_at() -> None:
    twilio = extract.row_from(None, details(body={"From": f"whatsapp:{CUSTOMER}", "To": OURS}))
    sip = extract.row_from(
        None, details(body={"from_number": f"sip:{CUSTOMER}@pbx.local", "to_number": OURS})
    )
    both = details(body={"From": "+48601999999"}, phone_call=phone_call("twilio"))

    assert (twilio["customer_number"], twilio["agent_number"]) == (CUSTOMER, OURS)
    assert (sip["customer_number"], sip["phone_source"]) == (CUSTOMER, "metadata_body")
    assert extract.row_from(None, both)["customer_number"] == CUSTOMER


def test_no_phone_data_or_no_real_number_leaves_the_numbers_empty() -> None:
    for data in (
        details(),
        details(phone_call=phone_call("twilio", external="anonymous")),
        details(body={"From": "client:web-widget"}),
    ):
        row = extract.row_from(None, data)
        assert (row["customer_number"], row["agent_number"], row["phone_source"]) == (
            None,
            None,
            None,
        )


def test_customer_number_has_the_form_contacts_store() -> None:
    row = extract.row_from(
        None, details(phone_call=phone_call("sip_trunking", external="48601234567"))
    )

    assert row["customer_number"] == parse_address("601 234 567").e164
    assert row["customer_number"] == loose_e164(f"whatsapp:{CUSTOMER}")


def test_outcome_title_and_summary_come_from_the_analysis_before_the_list() -> None:
    summary = {"conversation_id": "conv_1", "call_successful": "unknown", "call_summary_title": "x"}
    row = extract.row_from(summary, details())

    assert row["call_successful"] == "success"
    assert (row["title"], row["summary"]) == ("Rezerwacja", "Rezerwacja na piątek.")
    assert row["agent_messages"] == 2
    assert row["message_count"] == 3  # no list count: the transcript's length


def test_list_values_fill_the_row_when_details_are_missing() -> None:
    summary = {
        "agent_id": "agent_a",
        "conversation_id": "conv_9",
        "start_time_unix_secs": 1_772_323_200,
        "call_duration_secs": 12,
        "message_count": 4,
        "status": "done",
        "call_successful": "failure",
        "direction": "outbound",
    }
    row = extract.row_from(summary, None)

    assert (row["duration_secs"], row["message_count"], row["direction"]) == (12, 4, "outbound")
    assert row["call_successful"] == "failure"
    assert row["start_time"].isoformat() == "2026-03-01T00:00:00+00:00"


def test_cost_rating_and_likes() -> None:
    data = details(
        cost=740, feedback={"overall_score": "like", "likes": 2, "dislikes": 1, "rating": 4}
    )
    liked = details(feedback={})
    liked["transcript"][0]["feedback"] = {"score": "like", "time_in_call_secs": 0}
    liked["transcript"][2]["feedback"] = {"score": "dislike", "time_in_call_secs": 5}

    row = extract.row_from(None, data)
    counted = extract.row_from(None, liked)

    assert (row["cost"], row["rating"], row["likes"], row["dislikes"]) == (740.0, 4.0, 2, 1)
    assert (counted["cost"], counted["rating"], counted["likes"], counted["dislikes"]) == (
        None,
        None,
        1,
        1,
    )
    assert extract.row_from(None, details(feedback={"rating": 9}))["rating"] is None


def test_errors_are_failed_status_or_a_recorded_error() -> None:
    failed = details() | {"status": "failed"}

    assert extract.row_from(None, failed)["has_error"] is True
    assert extract.row_from(None, details(error={"code": 1011, "reason": "x"}))["has_error"] is True
    assert extract.row_from(None, details(error=None))["has_error"] is False


@pytest.mark.parametrize("tool", extract.TRANSFER_TOOLS)
def test_a_transfer_tool_call_marks_a_transfer(tool: str) -> None:
    data = details()
    data["transcript"][2]["tool_calls"] = [
        {"request_id": "r", "tool_name": tool, "params_as_json": "{}", "tool_has_been_called": True}
    ]
    other = copy.deepcopy(data)
    other["transcript"][2]["tool_calls"][0]["tool_name"] = "end_call"

    assert extract.row_from(None, data)["transferred"] is True
    assert extract.row_from(None, other)["transferred"] is False


def dropout(outcome: str, reason: str, duration: int, **metadata: Any) -> bool:
    data = details(termination_reason=reason, call_duration_secs=duration, **metadata)
    data["analysis"]["call_successful"] = outcome
    return bool(extract.row_from(None, data)["dropout"])


def test_dropout_is_an_unsuccessful_call_the_caller_ended_or_that_was_short() -> None:
    assert dropout("failure", "Call ended by remote party", 120)
    assert dropout("unknown", "Client disconnected: 1000", 200)
    assert dropout("failure", "end_call tool was called.", 12)  # under 30 s
    assert not dropout("failure", "end_call tool was called.", 120)  # the agent ended it
    assert not dropout("success", "Call ended by remote party", 5)
    assert not dropout("failure", "Call ended by remote party", 5, error={"code": 1})
    assert "30 seconds" in extract.DROPOUT_DEFINITION


def test_evaluations_are_read_per_criterion() -> None:
    data = details()
    data["analysis"]["evaluation_criteria_results"] = {
        "greeting": {"criteria_id": "greeting", "result": "success", "rationale": "."},
        "booking": {"criteria_id": "booking", "result": "failure", "rationale": "."},
        "odd": {"criteria_id": "odd", "result": "maybe", "rationale": "."},
    }

    assert extract.evaluations_from(data) == [
        ("booking", "failure"),
        ("greeting", "success"),
        ("odd", "unknown"),
    ]
    assert extract.evaluations_from(details() | {"analysis": None}) == []


def test_fingerprint_changes_with_what_the_list_shows_changed() -> None:
    summary = summary_of(details())
    same = dict(summary)
    moved = summary | {"call_successful": "failure"}
    longer = summary | {"message_count": 9}

    assert extract.list_fingerprint(summary) == extract.list_fingerprint(same)
    assert extract.list_fingerprint(summary) != extract.list_fingerprint(moved)
    assert extract.list_fingerprint(summary) != extract.list_fingerprint(longer)
