"""Answer over-limit keys in-process until their window ends, so abuse does not reach Redis.

Only rejections that no single hit can get past (`remaining == 0`) are cached, and only until
the store's `reset_after`, which is a lower bound on when a retry could succeed: the cache may
let a request reach the store early, never block one longer than the store would. Cached
rejections are not charged to the store (as in envoyproxy/ratelimit's local cache).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from authz_service.ratelimit.algorithms import Verdict
from authz_service.ratelimit.store import Hit, QuotaStore


class OverLimitCache:
    """Key -> blocked-until, bounded: when full, the least recently remembered key goes.

    O(1) per call (an OrderedDict kept in LRU order). Dropping an entry is always safe: that
    key's next request just asks the store again.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self._max = max_entries
        self._until: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._until)

    def blocked_until(self, key: str, now: float) -> float | None:
        until = self._until.get(key)
        if until is None:
            return None
        if until <= now:
            del self._until[key]
            return None
        return until

    def remember(self, key: str, until: float, now: float) -> None:
        if key in self._until:
            self._until.move_to_end(key)
        elif len(self._until) >= self._max:
            self._until.popitem(last=False)
        self._until[key] = until

    def forget(self, key: str) -> None:
        self._until.pop(key, None)


class CachingStore:
    def __init__(self, inner: QuotaStore, cache: OverLimitCache) -> None:
        self._inner = inner
        self._cache = cache

    async def apply(self, hits: Sequence[Hit], now: float) -> list[Verdict]:
        results: list[Verdict | None] = [None] * len(hits)
        pending: list[int] = []
        for index, hit in enumerate(hits):
            until = self._cache.blocked_until(hit.key, now) if hit.hits > 0 else None
            if until is None:
                pending.append(index)
            else:
                results[index] = Verdict(False, 0, until - now)
        if pending:
            verdicts = await self._inner.apply([hits[i] for i in pending], now)
            for index, verdict in zip(pending, verdicts, strict=True):
                results[index] = verdict
                hit = hits[index]
                if not verdict.allowed and verdict.remaining == 0 and _applies_to_any_hit(hit):
                    self._cache.remember(hit.key, now + verdict.reset_after, now)
        return [v for v in results if v is not None]

    async def reset(self, hits: Sequence[Hit], now: float) -> None:
        for hit in hits:
            self._cache.forget(hit.key)
        await self._inner.reset(hits, now)

    async def close(self) -> None:
        await self._inner.close()

    def stats(self) -> dict[str, float]:
        return {**self._inner.stats(), "local_over_limit_entries": float(len(self._cache))}


def _applies_to_any_hit(hit: Hit) -> bool:
    # A fixed window's reset is the same for every hit size; for the other algorithms the
    # store computed when *this many* hits fit, and a single hit may fit sooner.
    return hit.hits == 1 or (hit.hits > 1 and hit.algorithm == "fixed_window")
