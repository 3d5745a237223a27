"""One error for every vendor (Twilio, OpenAI, ElevenLabs, web servers) and one retry helper.

A vendor client turns whatever its library raised, or the answer it got, into a
`VendorError` of one of three kinds (healthchecks' `TransportError(permanent=…)`, with
a third kind for sends):

- *permanent*: the same request will fail the same way again (a bad number, a refused
  key, a missing model); record it on the row and stop;
- *transient*: the request did not take effect (refused connection, 429, a GET that
  timed out); trying again later may help;
- *ambiguous*: the request may have taken effect (a timeout or 5xx after a message went
  out). A send must be reconciled with the vendor before it is tried again, so
  `retry()` repeats these only for requests the caller declares idempotent.

Each client overrides only how it reads a failure into a VendorError; how often and how
long to wait is `retry()` with a `Backoff` (or `Backoff.delay` for retries that a queue
schedules later, such as message delivery).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import TypeVar

from relaydesk.core.db import utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")


class Kind(StrEnum):
    """Whether a failed request may be tried again, and whether it may have taken effect."""

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    AMBIGUOUS = "ambiguous"


class VendorError(Exception):
    """A vendor refused or failed a request; `message` is for a person to read.

    `vendor_code` is the vendor's own code (Twilio's 21610, OpenAI's
    "insufficient_quota"); it is not called `code` because relaydesk's own API errors
    (core.errors) use that name for theirs, and some vendor errors are both.
    `retry_after` is the wait the vendor asked for (seconds), `attempts` how many times
    the request was sent before this error was raised.
    """

    def __init__(
        self,
        message: str,
        /,
        *,
        vendor: str,
        kind: Kind,
        status: int | None = None,
        vendor_code: int | str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.vendor = vendor
        self.kind = kind
        self.status = status
        self.vendor_code = vendor_code
        self.retry_after = retry_after
        self.attempts = 1

    def __str__(self) -> str:
        return self.message

    @property
    def permanent(self) -> bool:
        """The same request will fail again: not worth retrying."""
        return self.kind is Kind.PERMANENT

    @property
    def transient(self) -> bool:
        """The request did not take effect; trying again may help."""
        return self.kind is Kind.TRANSIENT

    @property
    def ambiguous(self) -> bool:
        """The request may have taken effect: reconcile before sending it again."""
        return self.kind is Kind.AMBIGUOUS

    def retryable(self, *, idempotent: bool) -> bool:
        """Whether sending the same request again is both useful and safe."""
        return self.transient or (self.ambiguous and idempotent)


def status_kind(
    status: int,
    *,
    transient: frozenset[int] = frozenset({429}),
    server_error: Kind = Kind.TRANSIENT,
) -> Kind:
    """The kind of an HTTP error status: 5xx as `server_error`, `transient` ones, else permanent."""
    if status >= 500:
        return server_error
    if status in transient:
        return Kind.TRANSIENT
    return Kind.PERMANENT


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date); None if not given."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - utcnow()).total_seconds())


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: `first`, `first * factor`, … capped at `cap`, each ± `jitter`."""

    first: float = 1.0
    factor: float = 2.0
    cap: float = float("inf")
    jitter: float = 0.0  # a fraction: 0.2 spreads each wait over 80–120 %

    def delay(
        self, retry: int, *, uniform: Callable[[float, float], float] = random.uniform
    ) -> float:
        """The wait before retry number `retry` (1 for the first retry)."""
        base = min(self.cap, self.first * self.factor ** max(retry - 1, 0))
        if not self.jitter:
            return float(base)
        return base * uniform(1 - self.jitter, 1 + self.jitter)


def retry(
    call: Callable[[], T],
    *,
    attempts: int,
    backoff: Backoff,
    sleep: Callable[[float], None] = time.sleep,
    max_total_wait: float | None = None,
    idempotent: bool = False,
    label: str = "request",
) -> T:
    """Run `call`, retrying its retryable VendorErrors at most `attempts` times in all.

    Waits the vendor's Retry-After when it gave one, else the backoff; gives up (raises
    the last error, its `attempts` set) when the attempts are spent or the next wait
    would take the total past `max_total_wait`. Ambiguous errors are retried only when
    the request is `idempotent`. `sleep` is injectable so tests never wait.
    """
    waited = 0.0
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except VendorError as exc:
            exc.attempts = attempt
            if not exc.retryable(idempotent=idempotent) or attempt >= attempts:
                raise
            delay = exc.retry_after if exc.retry_after is not None else backoff.delay(attempt)
            if max_total_wait is not None and waited + delay > max_total_wait:
                raise
            log.warning("%s failed (%s); retry %d in %.1f s", label, exc, attempt, delay)
            if delay > 0:
                sleep(delay)
            waited += delay
    raise ValueError("retry() needs at least one attempt")
