"""The vendor-error model and the retry helper: pure logic, no server, no database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from email.utils import format_datetime

import pytest

from relaydesk.core.db import utcnow
from relaydesk.core.vendor import (
    Backoff,
    Kind,
    VendorError,
    retry,
    retry_after_seconds,
    status_kind,
)


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
