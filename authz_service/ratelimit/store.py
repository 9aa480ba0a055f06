"""The storage interface: one async call applies every hit of a request.

    QuotaStore.apply(hits, now) -> one Verdict per hit, in order
    QuotaStore.reset(hits, now) -> forget those counters
    QuotaStore.stats()          -> its saturation figures, read at scrape time

Backends: `MemoryStore` (one process), `RedisStore` (shared by every replica). Wrappers, each
a QuotaStore around another: `ResilientStore` (timeout + circuit breaker), `BatchingStore`
(concurrent calls share a round trip) and `CachingStore` (local over-limit cache); their
order is declared once, in `store_chain.py`. Errors raise `StoreUnavailable`. A store is
correct when it passes tests/integration/ratelimit/conformance/.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from authz_service.errors import TransientError
from authz_service.ratelimit.algorithms import Verdict, WindowPosition

StoreAlgorithm = Literal["fixed_window", "sliding_window", "token_bucket", "lockout"]


class StoreUnavailable(TransientError):
    """The quota store could not answer (down, slow, or the circuit breaker is open)."""

    reason = "rate_limit_unavailable"


@dataclass(frozen=True, slots=True)
class Hit:
    key: str  # the counter's name without the store's prefix; may carry a `{hash tag}`
    algorithm: StoreAlgorithm
    limit: int
    window_s: float
    hits: int  # 0 = only look
    charge_rejected: bool = True
    lockout_s: float = 0.0  # lockout only


class QuotaStore(Protocol):
    async def apply(self, hits: Sequence[Hit], now: float) -> list[Verdict]: ...

    async def reset(self, hits: Sequence[Hit], now: float) -> None:
        """Forget the counters these hits would touch now (operators' "reset quota")."""

    async def close(self) -> None: ...

    def stats(self) -> Mapping[str, float]:
        """Figures for `authz_quota_store{metric=...}`: a backend reports its own, a wrapper
        its inner store's plus its own. Cheap and synchronous: read at every scrape."""


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """The keys one hit touches and how long they live: the same for every store."""

    keys: tuple[str, ...]
    position: WindowPosition
    ttl_ms: int


def key_layout(hit: Hit, now: float) -> KeyLayout:
    window = hit.window_s
    position = WindowPosition.at(now, window)
    left = window - position.elapsed
    if hit.algorithm == "fixed_window":
        keys: tuple[str, ...] = (f"{hit.key}:{position.index}",)
    elif hit.algorithm == "sliding_window":
        keys = (f"{hit.key}:{position.index}", f"{hit.key}:{position.index - 1}")
        left += window  # the current counter is read as "previous" during the next window
    elif hit.algorithm == "token_bucket":
        keys = (hit.key,)
    else:
        keys = (f"{hit.key}:{position.index}", f"{hit.key}:lock")
    # A second of slack: expiry only collects garbage, the window index decides the count.
    return KeyLayout(keys, position, math.ceil(left * 1000) + 1000)
