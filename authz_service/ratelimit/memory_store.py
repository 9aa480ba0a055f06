"""An in-process QuotaStore with the same semantics as Redis, for a single process.

A batch is applied without awaiting, so on one event loop it is atomic like the Lua script.
"""

from __future__ import annotations

from collections.abc import Sequence

from authz_service.ratelimit import algorithms
from authz_service.ratelimit.algorithms import Verdict
from authz_service.ratelimit.store import Hit, plan

_SWEEP_EVERY = 4096  # calls between sweeps of expired keys


class MemoryStore:
    def __init__(self, key_prefix: str = "") -> None:
        self._prefix = key_prefix
        self._values: dict[str, tuple[float, float]] = {}  # key -> (value, expires_at)
        self._calls = 0

    def __len__(self) -> int:
        return len(self._values)

    async def apply(self, hits: Sequence[Hit], now: float) -> list[Verdict]:
        self._calls += 1
        if self._calls % _SWEEP_EVERY == 0:
            self.sweep(now)
        return [self._apply_one(hit, now) for hit in hits]

    async def reset(self, hits: Sequence[Hit], now: float) -> None:
        for hit in hits:
            for key in plan(hit, now).keys:
                self._values.pop(self._prefix + key, None)

    async def close(self) -> None:
        self._values.clear()

    def sweep(self, now: float) -> None:
        expired = [key for key, (_, expires) in self._values.items() if expires <= now]
        for key in expired:
            del self._values[key]

    def _get(self, key: str, now: float) -> float | None:
        item = self._values.get(key)
        if item is None or item[1] <= now:
            return None
        return item[0]

    def _set(self, key: str, value: float, now: float, ttl_ms: float) -> None:
        self._values[key] = (value, now + ttl_ms / 1000)

    def _apply_one(self, hit: Hit, now: float) -> Verdict:
        p = plan(hit, now)
        keys = [self._prefix + key for key in p.keys]
        elapsed, window = p.position.elapsed, hit.window_s
        if hit.algorithm == "fixed_window":
            count = int(self._get(keys[0], now) or 0)
            new, verdict = algorithms.fixed_window(
                count, hit.hits, hit.limit, hit.charge_rejected, elapsed, window
            )
            if new != count:
                self._set(keys[0], new, now, p.ttl_ms)
            return verdict
        if hit.algorithm == "sliding_window":
            current = int(self._get(keys[0], now) or 0)
            previous = int(self._get(keys[1], now) or 0)
            new, verdict = algorithms.sliding_window(
                previous, current, hit.hits, hit.limit, hit.charge_rejected, elapsed, window
            )
            if new != current:
                self._set(keys[0], new, now, p.ttl_ms)
            return verdict
        if hit.algorithm == "token_bucket":
            tat = self._get(keys[0], now)
            new_tat, verdict = algorithms.token_bucket(tat, hit.hits, hit.limit, window, now)
            if new_tat is not None and new_tat != tat:
                self._set(keys[0], new_tat, now, (new_tat - now) * 1000 + 1000)
            return verdict
        failures = int(self._get(keys[0], now) or 0)
        locked = self._get(keys[1], now)
        new_failures, new_locked, verdict = algorithms.lockout(
            failures, locked, hit.hits, hit.limit, hit.lockout_s, elapsed, window, now
        )
        if new_locked is not None and new_locked != locked:
            self._set(keys[1], new_locked, now, hit.lockout_s * 1000)
            self._values.pop(keys[0], None)
        elif new_failures != failures:
            self._set(keys[0], new_failures, now, p.ttl_ms)
        return verdict
