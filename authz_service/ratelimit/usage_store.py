"""Where the quota service keeps each Envoy's usage of each bucket, so that every replica of
the service computes shares from the same figures.

    UsageStore.record(reports, now) -> each bucket's live entries (this report's included)
    UsageStore.assign(shares)       -> remember the share each Envoy was given
    UsageStore.read(bucket, now)    -> a bucket's live entries (admin, explain)
    UsageStore.expire(entries, at)  -> end these entries at `at` at the latest (stream closed)

An entry lives until `expires_at` (now + the assignment TTL at its last report): an Envoy that
stops reporting gives its share back when its entry expires. Implementations:
`MemoryUsageStore` here (one replica, and the local fallback of every replica) and
`RedisUsageStore` (redis_usage_store.py). Errors raise `StoreUnavailable`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from authz_service.ratelimit.store import StoreUnavailable

NO_SHARE = -1.0  # an entry whose Envoy has not been assigned a share yet


@dataclass(frozen=True, slots=True)
class EnvoyUsage:
    """One Envoy's (one RLQS stream's) last report for one bucket."""

    envoy: str  # the stream's id
    peer: str  # the address the stream came from
    demand: float  # requests per second, allowed + denied, over its last report
    allowed: int  # in its last report
    denied: int
    expires_at: float
    share: float = NO_SHARE  # requests per window last assigned to it


@dataclass(frozen=True, slots=True)
class UsageReport:
    bucket: str  # the bucket's store key (without the store's prefix)
    usage: EnvoyUsage


@dataclass(frozen=True, slots=True)
class ShareUpdate:
    bucket: str
    envoy: str
    share: float


@dataclass(frozen=True, slots=True)
class EntryRef:
    bucket: str
    envoy: str


class UsageStore(Protocol):
    async def record(
        self, reports: Sequence[UsageReport], now: float
    ) -> list[list[EnvoyUsage]]: ...

    async def assign(self, shares: Sequence[ShareUpdate]) -> None: ...

    async def read(self, bucket: str, now: float) -> list[EnvoyUsage]: ...

    async def expire(self, entries: Sequence[EntryRef], at: float) -> None: ...

    async def close(self) -> None: ...


_SWEEP_STEP = 16  # buckets examined for expired entries on every call


class MemoryUsageStore:
    """Usage in this process. Bounded: at most `max_entries` (bucket, Envoy) entries; when
    full of live ones, a report needing a new entry raises StoreUnavailable (the quota
    service's `store_unavailable` decides) while known entries keep being updated."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._max_entries = max_entries
        self._entries = 0
        # bucket -> envoy -> usage, buckets in the order the sweep will next examine them
        self._buckets: OrderedDict[str, dict[str, EnvoyUsage]] = OrderedDict()

    def __len__(self) -> int:
        return self._entries

    async def record(self, reports: Sequence[UsageReport], now: float) -> list[list[EnvoyUsage]]:
        self._sweep(now)
        new = sum(1 for r in reports if r.usage.envoy not in self._buckets.get(r.bucket, {}))
        if new and self._entries + new > self._max_entries:
            raise StoreUnavailable(f"usage store full ({self._max_entries} entries)")
        return [self._record_one(report, now) for report in reports]

    async def assign(self, shares: Sequence[ShareUpdate]) -> None:
        for update in shares:
            envoys = self._buckets.get(update.bucket)
            usage = envoys.get(update.envoy) if envoys is not None else None
            if envoys is not None and usage is not None:
                envoys[update.envoy] = replace(usage, share=update.share)

    async def read(self, bucket: str, now: float) -> list[EnvoyUsage]:
        return [u for u in self._buckets.get(bucket, {}).values() if u.expires_at > now]

    async def read_many(self, buckets: Sequence[str], now: float) -> list[list[EnvoyUsage]]:
        return [await self.read(bucket, now) for bucket in buckets]

    async def expire(self, entries: Sequence[EntryRef], at: float) -> None:
        for ref in entries:
            envoys = self._buckets.get(ref.bucket)
            usage = envoys.get(ref.envoy) if envoys is not None else None
            if envoys is not None and usage is not None and usage.expires_at > at:
                envoys[ref.envoy] = replace(usage, expires_at=at)

    async def close(self) -> None:
        self._buckets.clear()
        self._entries = 0

    def _record_one(self, report: UsageReport, now: float) -> list[EnvoyUsage]:
        envoys = self._buckets.setdefault(report.bucket, {})
        known = envoys.get(report.usage.envoy)
        if known is None:
            self._entries += 1
        # The share stays until a new one is assigned.
        share = known.share if known is not None else report.usage.share
        envoys[report.usage.envoy] = replace(report.usage, share=share)
        self._drop_expired(report.bucket, envoys, now)
        return list(envoys.values())

    def _drop_expired(self, bucket: str, envoys: dict[str, EnvoyUsage], now: float) -> None:
        for envoy in [e for e, usage in envoys.items() if usage.expires_at <= now]:
            del envoys[envoy]
            self._entries -= 1
        if not envoys:
            self._buckets.pop(bucket, None)

    def _sweep(self, now: float) -> None:
        """Examine a few buckets (round robin) so that abandoned ones do not pile up."""
        for _ in range(min(_SWEEP_STEP, len(self._buckets))):
            bucket, envoys = self._buckets.popitem(last=False)
            self._buckets[bucket] = envoys
            self._drop_expired(bucket, envoys, now)
