"""A circuit breaker with the clock passed in.

closed --N consecutive failures--> open --`open_for` elapsed--> half-open (one probe)
half-open --probe succeeds--> closed;  --probe fails--> open again
half-open --probe abandoned (its caller went away)--> open, the next call probes
"""

from __future__ import annotations

import enum


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, failure_threshold: int = 5, open_for: float = 5.0) -> None:
        self._threshold = failure_threshold
        self._open_for = open_for
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0

    @property
    def state(self) -> BreakerState:
        return self._state

    def allow(self, now: float) -> bool:
        """May a call go to the store now? In half-open, only the one probe may."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN and now - self._opened_at >= self._open_for:
            self._state = BreakerState.HALF_OPEN
            return True
        return False

    def record_success(self) -> None:
        self._state = BreakerState.CLOSED
        self._failures = 0

    def release_probe(self) -> None:
        """The probe ended with no answer about the store: let the next call probe instead."""
        if self._state is BreakerState.HALF_OPEN:
            self._state = BreakerState.OPEN
            self._opened_at = float("-inf")

    def record_failure(self, now: float) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self._threshold:
            self._state = BreakerState.OPEN
            self._opened_at = now
