"""Run-time knobs of the emulator: load simulation and per-recipient failure rules."""

from __future__ import annotations

import threading
import time
from typing import Literal

from pydantic import BaseModel, Field

from relaydesk.core.config import Settings


class FailureRule(BaseModel):
    """Make every message to one recipient end in `status` with `error_code`."""

    status: Literal["failed", "undelivered"] = "undelivered"
    error_code: int = Field(30008, ge=10000, le=99999)


class Knobs(BaseModel):
    """Everything `GET/PUT /sandbox/config` reads and overrides."""

    latency_ms: int = Field(0, ge=0, le=60_000)
    sender_mps: float = Field(0.0, ge=0)
    api_rps: float = Field(0.0, ge=0)
    status_delay_ms: int = Field(800, ge=0, le=600_000)
    failure_rules: dict[str, FailureRule] = Field(default_factory=dict)


class KnobsUpdate(BaseModel):
    """A partial override; `failure_rules`, when given, replaces the whole table."""

    latency_ms: int | None = Field(None, ge=0, le=60_000)
    sender_mps: float | None = Field(None, ge=0)
    api_rps: float | None = Field(None, ge=0)
    status_delay_ms: int | None = Field(None, ge=0, le=600_000)
    failure_rules: dict[str, FailureRule] | None = None


def bare_number(address: str) -> str:
    """`whatsapp:+48...` → `+48...`: rules and the phone page match either channel."""
    return address.removeprefix("whatsapp:")


class TokenBucket:
    """Allows `rate` requests a second with a burst of max(1, rate); rate 0 means unlimited."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._capacity = max(1.0, rate)
        self._tokens = self._capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Spend one token; False when the bucket is empty."""
        if self.rate <= 0:
            return True
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True


class Control:
    """The current knobs (defaults from settings), shared by the routes and the dispatcher."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._knobs = self._defaults()
        self.bucket = TokenBucket(self._knobs.api_rps)

    @property
    def knobs(self) -> Knobs:
        """A snapshot of the current knobs."""
        with self._lock:
            return self._knobs.model_copy(deep=True)

    def update(self, change: KnobsUpdate) -> Knobs:
        """Apply a partial override and return the result."""
        given = change.model_dump(exclude_none=True)
        if change.failure_rules is not None:
            given["failure_rules"] = {bare_number(k): v for k, v in change.failure_rules.items()}
        with self._lock:
            self._knobs = self._knobs.model_copy(update=given)
            if self.bucket.rate != self._knobs.api_rps:
                self.bucket = TokenBucket(self._knobs.api_rps)
            return self._knobs.model_copy(deep=True)

    def reset(self) -> None:
        """Back to the values from settings, no failure rules."""
        with self._lock:
            self._knobs = self._defaults()
            self.bucket = TokenBucket(self._knobs.api_rps)

    def rule_for(self, to_addr: str) -> FailureRule | None:
        """The failure rule for a recipient, if any."""
        with self._lock:
            return self._knobs.failure_rules.get(bare_number(to_addr))

    def _defaults(self) -> Knobs:
        s = self._settings
        return Knobs(
            latency_ms=s.sandbox_latency_ms,
            sender_mps=s.sandbox_sender_mps,
            api_rps=s.sandbox_api_rps,
            status_delay_ms=s.sandbox_status_delay_ms,
        )
