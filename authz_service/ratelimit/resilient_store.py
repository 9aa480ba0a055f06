"""Bound every store call in time and stop calling a store that keeps failing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from authz_service.ratelimit.algorithms import Verdict
from authz_service.ratelimit.circuit import BreakerState, CircuitBreaker
from authz_service.ratelimit.store import Hit, QuotaStore, StoreUnavailable


class ResilientStore:
    def __init__(
        self,
        inner: QuotaStore,
        timeout_s: float,
        breaker: CircuitBreaker,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._timeout = timeout_s
        self._breaker = breaker
        self._clock = clock

    async def apply(self, hits: Sequence[Hit], now: float) -> list[Verdict]:
        if not self._breaker.allow(self._clock()):
            raise StoreUnavailable("circuit breaker open")
        # Single-threaded: a call let through in half-open is the one probe.
        probing = self._breaker.state is BreakerState.HALF_OPEN
        try:
            async with asyncio.timeout(self._timeout):
                verdicts = await self._inner.apply(hits, now)
        except TimeoutError:
            self._breaker.record_failure(self._clock())
            raise StoreUnavailable(f"store timed out after {self._timeout * 1000:.0f} ms") from None
        except asyncio.CancelledError:
            # The caller went away (Envoy resets the ext_authz or RLS stream when its client
            # disconnects): that says nothing about the store. Counting it would let a burst
            # of client disconnects open the breaker and refuse everyone for `open_for`.
            if probing:
                self._breaker.release_probe()
            raise
        except Exception:
            self._breaker.record_failure(self._clock())
            raise
        self._breaker.record_success()
        return verdicts

    async def reset(self, hits: Sequence[Hit], now: float) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._inner.reset(hits, now)
        except TimeoutError:
            raise StoreUnavailable("store timed out") from None

    async def close(self) -> None:
        await self._inner.close()

    def stats(self) -> dict[str, float]:
        # 1 while the store is not called at all (open; half-open lets one probe through).
        breaker_open = self._breaker.state is BreakerState.OPEN
        return {**self._inner.stats(), "breaker_open": float(breaker_open)}
