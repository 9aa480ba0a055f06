"""Coalesce the store calls of concurrent RPCs into one round trip (group commit).

Envoy keeps many ShouldRateLimit calls in flight on one HTTP/2 connection. Each call used to
cost one EVALSHA through redis-py (~250 us of Python per call here). Now at most
`max_in_flight` round trips run at once; calls that arrive meanwhile wait and then share the
next one: one script run applies all their hits atomically, so "exactly N admitted" still
holds. Under light load a call goes out at once; under heavy load batches grow by themselves.

In the Redis chain it sits outside `ResilientStore` (store_chain.py says why), so the circuit
breaker counts round trips, not the callers that shared one. `timeout_s` bounds each caller's
whole wait, queueing behind a slow round trip included, without counting anything against
the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from authz_service.ratelimit.algorithms import Verdict
from authz_service.ratelimit.store import Hit, QuotaStore, StoreUnavailable

_Waiter = tuple[Sequence[Hit], float, "asyncio.Future[list[Verdict]]"]


class BatchingStore:
    def __init__(
        self, inner: QuotaStore, max_in_flight: int = 1, timeout_s: float | None = None
    ) -> None:
        self._inner = inner
        self._max_in_flight = max_in_flight
        self._timeout = timeout_s
        self._pending: list[_Waiter] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._round_trips = 0

    async def apply(self, hits: Sequence[Hit], now: float) -> list[Verdict]:
        future: asyncio.Future[list[Verdict]] = asyncio.get_running_loop().create_future()
        self._pending.append((hits, now, future))
        if self._in_flight < self._max_in_flight:
            self._send_pending()
        try:
            async with asyncio.timeout(self._timeout):
                return await future
        except TimeoutError:
            # The round trip's own timeout is counted by the breaker below; this caller's
            # wait is not a store failure of its own.
            raise StoreUnavailable(f"store timed out after {self._timeout_ms} ms") from None

    @property
    def _timeout_ms(self) -> str:
        return f"{(self._timeout or 0) * 1000:.0f}"

    def _send_pending(self) -> None:
        # Callers that gave up (timed out, cancelled) while queued need no round trip.
        batch = [waiter for waiter in self._pending if not waiter[2].done()]
        self._pending = []
        if not batch:
            return
        self._in_flight += 1
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[_Waiter]) -> None:
        self._round_trips += 1
        combined = [hit for hits, _, _ in batch for hit in hits]
        # The batch's clock: the latest caller's (they differ by a round trip at most).
        now = max(at for _, at, _ in batch)
        try:
            verdicts = await self._inner.apply(combined, now)
        except BaseException as error:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if isinstance(error, asyncio.CancelledError):
                raise
        else:
            offset = 0
            for hits, _, future in batch:
                if not future.done():
                    future.set_result(verdicts[offset : offset + len(hits)])
                offset += len(hits)
        finally:
            self._in_flight -= 1
            if self._pending and self._in_flight < self._max_in_flight:
                self._send_pending()

    async def reset(self, hits: Sequence[Hit], now: float) -> None:
        await self._inner.reset(hits, now)

    async def close(self) -> None:
        await self._inner.close()

    def stats(self) -> dict[str, float]:
        # Round trips against calls (authz_rpc totals) says how much batching saves.
        return {**self._inner.stats(), "redis_round_trips": float(self._round_trips)}
