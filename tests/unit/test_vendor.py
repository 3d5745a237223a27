"""The vendor-error model and the retry helper: pure logic, no server, no database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from email.utils import format_datetime

import httpx
import httpx2
import openai
import pytest
import urllib3
from twilio.base.exceptions import TwilioRestException

from relaydesk.ai.providers import LLMConfig, LLMError, openai_error
from relaydesk.channels.twilio import gateway
from relaydesk.channels.twilio.gateway import GatewayError
from relaydesk.core.db import utcnow
from relaydesk.core.vendor import (
    Backoff,
    Kind,
    VendorError,
    retry,
    retry_after_seconds,
    status_kind,
)
from relaydesk.media import download
from relaydesk.messaging import delivery
from relaydesk.news import fetcher
from relaydesk.news.fetcher import FetchError
from relaydesk.voicebot import client as elevenlabs
from relaydesk.voicebot.client import ElevenLabsError


def failing(*errors: VendorError, answer: str = "ok") -> tuple[Callable[[], str], list[int]]:
    """A call that raises `errors` one after another, then answers; and its call count."""
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return answer

    return call, calls


def error(kind: Kind, retry_after: float | None = None) -> VendorError:
    return VendorError("the vendor broke", vendor="test", kind=kind, retry_after=retry_after)


# --- the error ---------------------------------------------------------------------------


def test_an_error_reads_as_its_message_and_says_its_kind() -> None:
    exc = VendorError("Twilio did not answer in time", vendor="twilio", kind=Kind.AMBIGUOUS)

    assert str(exc) == "Twilio did not answer in time"
    assert (exc.permanent, exc.transient, exc.ambiguous) == (False, False, True)


def test_ambiguous_errors_are_retryable_only_for_idempotent_requests() -> None:
    assert error(Kind.TRANSIENT).retryable(idempotent=False)
    assert not error(Kind.AMBIGUOUS).retryable(idempotent=False)
    assert error(Kind.AMBIGUOUS).retryable(idempotent=True)
    assert not error(Kind.PERMANENT).retryable(idempotent=True)


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, Kind.PERMANENT), (401, Kind.PERMANENT), (404, Kind.PERMANENT),
     (429, Kind.TRANSIENT), (500, Kind.TRANSIENT), (503, Kind.TRANSIENT)],
)  # fmt: skip
def test_http_statuses_are_classified_as_permanent_or_transient(status: int, kind: Kind) -> None:
    assert status_kind(status) is kind


def test_a_vendor_may_call_server_errors_ambiguous_and_more_statuses_transient() -> None:
    assert status_kind(502, server_error=Kind.AMBIGUOUS) is Kind.AMBIGUOUS
    assert status_kind(409, transient=frozenset({408, 409, 429})) is Kind.TRANSIENT
    assert status_kind(409) is Kind.PERMANENT


def test_retry_after_is_read_as_seconds_or_as_a_date() -> None:
    in_a_minute = format_datetime(utcnow() + timedelta(seconds=60), usegmt=True)

    assert retry_after_seconds("7") == 7.0
    assert 55 < (retry_after_seconds(in_a_minute) or 0) <= 60
    assert retry_after_seconds("-3") == 0.0
    assert retry_after_seconds("") is None
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None


# --- backoff -----------------------------------------------------------------------------


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(first=1.0, cap=5.0)

    assert [backoff.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_jitter_spreads_each_wait_within_its_fraction() -> None:
    backoff = Backoff(first=5.0, cap=600.0, jitter=0.2)

    assert backoff.delay(2, uniform=lambda low, high: low) == pytest.approx(8.0)
    assert backoff.delay(2, uniform=lambda low, high: high) == pytest.approx(12.0)
    assert all(4.0 <= backoff.delay(1) <= 6.0 for _ in range(50))


# --- retry -------------------------------------------------------------------------------


def test_transient_errors_are_retried_with_backoff_until_the_call_answers() -> None:
    waits: list[float] = []
    call, calls = failing(error(Kind.TRANSIENT), error(Kind.TRANSIENT))

    assert retry(call, attempts=3, backoff=Backoff(first=0.5), sleep=waits.append) == "ok"
    assert len(calls) == 3
    assert waits == [0.5, 1.0]


def test_the_last_error_is_raised_when_the_attempts_are_spent() -> None:
    waits: list[float] = []
    call, calls = failing(*(error(Kind.TRANSIENT) for _ in range(5)))

    with pytest.raises(VendorError) as caught:
        retry(call, attempts=3, backoff=Backoff(), sleep=waits.append)
    assert len(calls) == 3
    assert caught.value.attempts == 3
    assert waits == [1.0, 2.0]


def test_permanent_errors_are_raised_at_once() -> None:
    waits: list[float] = []
    call, calls = failing(error(Kind.PERMANENT))

    with pytest.raises(VendorError):
        retry(call, attempts=5, backoff=Backoff(), sleep=waits.append)
    assert len(calls) == 1 and waits == []


def test_an_ambiguous_send_is_never_retried_blindly() -> None:
    waits: list[float] = []
    call, calls = failing(error(Kind.AMBIGUOUS))

    with pytest.raises(VendorError) as caught:
        retry(call, attempts=5, backoff=Backoff(), sleep=waits.append)
    assert caught.value.ambiguous
    assert len(calls) == 1 and waits == []


def test_an_ambiguous_error_of_an_idempotent_request_is_retried() -> None:
    call, calls = failing(error(Kind.AMBIGUOUS))

    assert retry(call, attempts=2, backoff=Backoff(), sleep=lambda _: None, idempotent=True)
    assert len(calls) == 2


def test_retry_after_from_the_vendor_replaces_the_backoff() -> None:
    waits: list[float] = []
    call, _ = failing(error(Kind.TRANSIENT, retry_after=4.0), error(Kind.TRANSIENT))

    retry(call, attempts=3, backoff=Backoff(first=1.0), sleep=waits.append)
    assert waits == [4.0, 2.0]


def test_retrying_stops_before_a_wait_that_would_pass_the_total_budget() -> None:
    waits: list[float] = []
    call, calls = failing(*(error(Kind.TRANSIENT, retry_after=4.0) for _ in range(5)))

    with pytest.raises(VendorError) as caught:
        retry(call, attempts=8, backoff=Backoff(), sleep=waits.append, max_total_wait=10)
    assert waits == [4.0, 4.0]
    assert len(calls) == 3 and caught.value.attempts == 3


def test_other_exceptions_are_not_retried() -> None:
    calls: list[int] = []

    def broken() -> str:
        calls.append(1)
        raise KeyError("a bug, not a vendor")

    with pytest.raises(KeyError):
        retry(broken, attempts=3, backoff=Backoff(), sleep=lambda _: None)
    assert len(calls) == 1


# --- each vendor's reading of its failures -------------------------------------------------


def twilio_refusal(status: int, code: int | None = None) -> GatewayError:
    return gateway.read_error(TwilioRestException(status, "/Messages.json", msg="no", code=code))


def test_twilio_classifies_refusals_by_status_and_code() -> None:
    assert twilio_refusal(400, 21211).permanent  # an invalid number stays invalid
    assert twilio_refusal(400, 21211).code == 21211
    assert twilio_refusal(401, 20003).permanent
    assert twilio_refusal(400).permanent  # a 4xx without a code
    assert twilio_refusal(400, 30001).transient  # a coded refusal Twilio may lift
    rate_limited = twilio_refusal(429)
    assert rate_limited.transient and rate_limited.code == 20429


def test_a_twilio_server_error_is_ambiguous_because_the_message_may_have_been_taken() -> None:
    failed = twilio_refusal(503)

    assert failed.ambiguous and failed.status == 503
    assert not failed.retryable(idempotent=False)


def test_twilio_network_errors_are_ambiguous_unless_the_connection_was_refused() -> None:
    refused = urllib3.exceptions.NewConnectionError(None, "connection refused")  # type: ignore[arg-type]
    timeout = urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out")  # type: ignore[arg-type]
    reset = urllib3.exceptions.ProtocolError("connection reset")

    assert gateway.network_error(refused).transient
    assert gateway.network_error(timeout).ambiguous
    assert gateway.network_error(timeout).message == "Twilio did not answer in time"
    assert gateway.network_error(reset).ambiguous
    assert gateway.network_error(ConnectionResetError()).ambiguous


def test_message_delivery_schedules_retries_5_s_doubling_to_10_minutes_with_jitter() -> None:
    assert 4.0 <= delivery.backoff_seconds(1) <= 6.0
    assert 16.0 <= delivery.backoff_seconds(3) <= 24.0
    assert 480.0 <= delivery.backoff_seconds(30) <= 720.0


OPENAI = LLMConfig(provider="openai", model="gpt-4o-mini", api_key="sk-secret-123")


def openai_status(status: int, code: str | None = None) -> LLMError:
    request = httpx2.Request("POST", "https://api.openai.com/v1/chat/completions")
    body = {"error": {"message": "says sk-secret-123", "code": code}}
    response = httpx2.Response(status, request=request, json=body)
    return openai_error(
        OPENAI, openai.APIStatusError("says sk-secret-123", response=response, body=body["error"])
    )


@pytest.mark.parametrize(
    ("status", "code", "transient", "says"),
    [
        (401, None, False, "OpenAI rejected the API key (401)"),
        (404, None, False, "The model 'gpt-4o-mini' does not exist on this server (404)"),
        (429, None, True, "OpenAI is rate limiting requests (429)"),
        (429, "insufficient_quota", False, "OpenAI says the account has run out of credit (429)"),
        (409, None, True, "OpenAI had a temporary problem (409)"),
        (500, None, True, "OpenAI had a temporary problem (500)"),
        (400, None, False, "OpenAI refused the request (400): says ***"),
    ],
)
def test_openai_statuses_are_classified_with_a_message_that_never_shows_the_key(
    status: int, code: str | None, transient: bool, says: str
) -> None:
    failure = openai_status(status, code)

    assert (failure.transient, failure.message, failure.status) == (transient, says, status)
    assert failure.vendor_code == code


def test_openai_timeouts_and_lost_connections_are_transient() -> None:
    request = httpx2.Request("POST", "https://api.openai.com/v1/chat/completions")

    late = openai_error(OPENAI, openai.APITimeoutError(request=request))
    lost = openai_error(OPENAI, openai.APIConnectionError(request=request))
    assert late.transient and late.message == "The AI provider did not answer within 30 s"
    assert lost.transient and lost.message == "Could not connect to OpenAI"


def elevenlabs_answer(status: int, **headers: str) -> ElevenLabsError:
    return elevenlabs.read_error(httpx.Response(status, headers=headers), "agent agent_1")


def test_elevenlabs_rate_limits_carry_their_retry_after_and_refusals_are_permanent() -> None:
    limited = elevenlabs_answer(429, **{"retry-after": "4"})
    assert limited.transient and limited.retry_after == 4.0
    assert elevenlabs_answer(429, **{"retry-after": "0"}).retry_after is None  # backoff decides
    assert elevenlabs_answer(502).transient
    refused = elevenlabs_answer(401)
    assert refused.permanent and "refused the API key (401)" in refused.message
    missing = elevenlabs_answer(404)
    assert missing.permanent and missing.message.startswith(
        "ElevenLabs does not know agent agent_1"
    )


def test_elevenlabs_errors_keep_the_api_code_and_status_the_panel_shows() -> None:
    refused = elevenlabs_answer(403)

    assert refused.status_code == 502
    assert refused.to_dict()["code"] == "elevenlabs_error"
    assert refused.to_dict()["vendor_status"] == 403


@pytest.mark.parametrize(
    ("status", "transient", "says"),
    [
        (503, True, "Twilio answered 503"),
        (429, True, "Twilio answered 429"),
        (401, False, "Twilio refused the download (401): check the credentials"),
        (404, False, "Twilio no longer has this file (404)"),
        (400, False, "Twilio answered 400"),
    ],
)
def test_media_downloads_retry_busy_answers_and_record_refusals(
    status: int, transient: bool, says: str
) -> None:
    failure = download.read_error(httpx.Response(status))

    assert (failure.transient, str(failure)) == (transient, says)


def test_news_pages_that_fail_say_whether_a_later_run_may_succeed() -> None:
    assert fetcher.read_error(httpx.Response(503)).transient
    missing = fetcher.read_error(httpx.Response(404))
    assert missing.permanent and missing.reason == "the server answered HTTP 404 Not Found"
    assert FetchError("robots.txt disallows it", skipped=True).permanent
