"""An in-process QuotaStore with the same semantics as Redis, for a single process.

A batch is applied without awaiting, so on one event loop it is atomic like the Lua script.

Bounded work per call: each call examines at most `_SWEEP_STEP` keys for expiry, oldest
examined first (a round robin through an OrderedDict), instead of pausing the event loop
for a sweep of the whole table. The table holds at most about `max_keys` keys: when it is
full, a larger bounded step looks for expired keys to drop, and if there are none a hit
that needs a new key raises StoreUnavailable, so the limiter's `failure_mode` decides for
that caller (503 by default). Known keys keep counting: a full store never forgets a
counter, so it never admits more than a limit allows.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from authz_service.ratelimit import algorithms
from authz_service.ratelimit.algorithms import ArrivalTime, Verdict
from authz_service.ratelimit.store import Hit, StoreUnavailable, key_layout

_SWEEP_STEP = 16  # keys examined for expiry on every call
_ROOM_STEP = 1024  # keys examined when the table is full, before refusing a new key


class MemoryStore:
    def __init__(self, key_prefix: str = "", max_keys: int = 1_000_000) -> None:
        self._prefix = key_prefix
        self._max_keys = max_keys
        # key -> (value, expires_at), in the order the sweep will next examine them; a value
        # is a count or an instant, or a token bucket's ArrivalTime
        self._values: OrderedDict[str, tuple[float | ArrivalTime, float]] = OrderedDict()

    def stats(self) -> dict[str, float]:
        # When `memory_keys` reaches `memory_max_keys`, requests needing a new counter meet
        # the limiter's failure_mode.
        return {"memory_keys": float(len(self._values)), "memory_max_keys": float(self._max_keys)}

    async def apply(self, hits: Sequence[Hit], now: float) -> list[Verdict]:
        self._sweep_step(now, _SWEEP_STEP)
        if len(self._values) >= self._max_keys and self._needs_new_key(hits, now):
            self._sweep_step(now, _ROOM_STEP)
            if len(self._values) >= self._max_keys:
                raise StoreUnavailable(f"memory store full ({self._max_keys} keys)")
        return [self._apply_one(hit, now) for hit in hits]

    async def reset(self, hits: Sequence[Hit], now: float) -> None:
        for hit in hits:
            for key in key_layout(hit, now).keys:
                self._values.pop(self._prefix + key, None)

    async def close(self) -> None:
        self._values.clear()

    def _sweep_step(self, now: float, budget: int) -> None:
        values = self._values
        for _ in range(min(budget, len(values))):
            key, item = values.popitem(last=False)
            if item[1] > now:
                values[key] = item  # still live: to the back of the round robin

    def _needs_new_key(self, hits: Sequence[Hit], now: float) -> bool:
        return any(self._prefix + key_layout(hit, now).keys[0] not in self._values for hit in hits)

    def _get(self, key: str, now: float) -> float | ArrivalTime | None:
        item = self._values.get(key)
        if item is None or item[1] <= now:
            return None
        return item[0]

    def _number(self, key: str, now: float) -> float | None:
        value = self._get(key, now)
        # Each algorithm has keys of its own (store.key_layout): a mix-up is a bug.
        assert not isinstance(value, ArrivalTime), f"{key} holds a token bucket"
        return value

    def _arrival(self, key: str, now: float) -> ArrivalTime | None:
        value = self._get(key, now)
        assert value is None or isinstance(value, ArrivalTime), f"{key} holds a counter"
        return value

    def _set(self, key: str, value: float | ArrivalTime, now: float, ttl_ms: float) -> None:
        self._values[key] = (value, now + ttl_ms / 1000)

    def _apply_one(self, hit: Hit, now: float) -> Verdict:
        layout = key_layout(hit, now)
        keys = [self._prefix + key for key in layout.keys]
        elapsed, window = layout.position.elapsed, hit.window_s
        if hit.algorithm == "fixed_window":
            count = int(self._number(keys[0], now) or 0)
            new, verdict = algorithms.fixed_window(
                count, hit.hits, hit.limit, hit.charge_rejected, elapsed, window
            )
            if new != count:
                self._set(keys[0], new, now, layout.ttl_ms)
            return verdict
        if hit.algorithm == "sliding_window":
            current = int(self._number(keys[0], now) or 0)
            previous = int(self._number(keys[1], now) or 0)
            new, verdict = algorithms.sliding_window(
                previous, current, hit.hits, hit.limit, hit.charge_rejected, elapsed, window
            )
            if new != current:
                self._set(keys[0], new, now, layout.ttl_ms)
            return verdict
        if hit.algorithm == "token_bucket":
            tat = self._arrival(keys[0], now)
            now_ms = algorithms.bucket_millis(now)
            window_ms = algorithms.bucket_window_millis(window)
            new_tat, verdict = algorithms.token_bucket(tat, hit.hits, hit.limit, window_ms, now_ms)
            if new_tat is not None and new_tat != tat:
                self._set(keys[0], new_tat, now, algorithms.bucket_ttl_ms(new_tat, now_ms))
            return verdict
        failures = int(self._number(keys[0], now) or 0)
        locked = self._number(keys[1], now)
        new_failures, new_locked, verdict = algorithms.lockout(
            failures, locked, hit.hits, hit.limit, hit.lockout_s, elapsed, window, now
        )
        if new_locked is not None and new_locked != locked:
            self._set(keys[1], new_locked, now, hit.lockout_s * 1000)
            self._values.pop(keys[0], None)
        elif new_failures != failures:
            self._set(keys[0], new_failures, now, layout.ttl_ms)
        return verdict
