"""Coalesce the store calls of concurrent RPCs into one round trip.

Envoy keeps many ShouldRateLimit calls in flight on one HTTP/2 connection. Each call used to
cost one EVALSHA through redis-py (~250 us of Python per call here); calls that arrive while a
round trip is being prepared now share it: one script run applies all their hits atomically,
so "exactly N admitted" still holds, and a request never pays more than one round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from authz_service.ratelimit.algorithms import Verdict
from authz_service.ratelimit.store import Hit, QuotaStore

_Waiter = tuple[Sequence[Hit], "asyncio.Future[list[Verdict]]"]


class BatchingStore:
    def __init__(self, inner: QuotaStore, max_batch_hits: int = 512) -> None:
        self._inner = inner
        self._max_batch_hits = max_batch_hits
        self._pending: list[_Waiter] = []
        self._pending_hits = 0
        self._now = 0.0
        self._flush_scheduled = False
        self.round_trips = 0

    @property
    def inner(self) -> QuotaStore:
        return self._inner

    async def apply(self, hits: Sequence[Hit], now: float) -> list[Verdict]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Verdict]] = loop.create_future()
        if not self._pending:
            self._now = now  # the batch's clock: callers differ by microseconds at most
        self._pending.append((hits, future))
        self._pending_hits += len(hits)
        if self._pending_hits >= self._max_batch_hits:
            self._flush()
        elif not self._flush_scheduled:
            # Let every RPC already runnable in this loop iteration join the batch.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending, self._pending_hits = self._pending, [], 0
        if batch:
            asyncio.get_running_loop().create_task(self._run(batch, self._now))

    async def _run(self, batch: list[_Waiter], now: float) -> None:
        self.round_trips += 1
        combined = [hit for hits, _ in batch for hit in hits]
        try:
            verdicts = await self._inner.apply(combined, now)
        except BaseException as error:
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if isinstance(error, asyncio.CancelledError):
                raise
            return
        offset = 0
        for hits, future in batch:
            if not future.done():
                future.set_result(verdicts[offset : offset + len(hits)])
            offset += len(hits)

    async def reset(self, hits: Sequence[Hit], now: float) -> None:
        await self._inner.reset(hits, now)

    async def close(self) -> None:
        await self._inner.close()
