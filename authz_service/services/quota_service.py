"""The Rate Limit Quota Service use case: usage reports in, each Envoy's share out.

Every RLQS stream is one Envoy (Envoy's reports carry no node id; an Envoy with several
`rate_limit_quota` filters opens one stream per filter, each with its own buckets). On each
report the stream's buckets are recorded in the usage store, the limit of each bucket is split
among the Envoys that reported it within the assignment TTL (ratelimit/quota_shares.py), and
the reporting Envoy gets its share back. Envoys whose streams this replica holds get their new
share pushed at once when it changed; those of other replicas get it at their next report
(every 5 s). Re-sending an unchanged token bucket only refreshes its TTL in Envoy.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence

from authz_service.ratelimit.outages import StoreOutages
from authz_service.ratelimit.quota_assignments import Assignment, BucketUsage, Entry, Strategy
from authz_service.ratelimit.quota_shares import UNKNOWN_DEMAND, demand_rate, fair_shares
from authz_service.ratelimit.store import StoreUnavailable
from authz_service.ratelimit.usage_store import (
    EntryRef,
    EnvoyUsage,
    MemoryUsageStore,
    ShareUpdate,
    UsageReport,
    UsageStore,
)
from authz_service.services.quota_buckets import (
    ResolvedBucket,
    assignment,
    blanket,
    descriptor_orders,
    resolve,
)
from authz_service.services.quota_types import (
    ConfigProvider,
    EnvoyStream,
    QuotaConfig,
    QuotaServiceUnavailable,
    QuotaUsageView,
)
from authz_service.telemetry.quota_telemetry import QuotaTelemetry

__all__ = [
    "RECONNECT_GRACE_S",
    "EnvoyStream",
    "QuotaConfig",
    "QuotaServiceUnavailable",
    "QuotaShareService",
    "QuotaUsageView",
]

log = logging.getLogger(__name__)

STORE_TIMEOUT_S = 1.0  # reports are off the request path: a slow store costs no request
# An Envoy whose stream ended keeps its share this long: it reconnects (to this replica or
# another, under a new stream id) at its next report, 5 s later at most.
RECONNECT_GRACE_S = 7.0


class QuotaShareService:
    def __init__(
        self,
        config: ConfigProvider,
        store: UsageStore,
        *,
        telemetry: QuotaTelemetry | None = None,
        outages: StoreOutages | None = None,
        clock: Callable[[], float] = time.time,
        store_timeout_s: float = STORE_TIMEOUT_S,
    ) -> None:
        self._config = config
        self._store = store
        self._store_timeout = store_timeout_s
        # Every report is also kept here: what `local_shares` splits when the store fails.
        self._local = store if isinstance(store, MemoryUsageStore) else MemoryUsageStore()
        self._telemetry = telemetry or QuotaTelemetry()
        self._outages = outages or StoreOutages()
        self._clock = clock
        self._streams = itertools.count(1)
        # Unique per process start: a restarted replica (pid 1 again in a container) must
        # not take over the entries its predecessor's streams left in the store.
        self._replica = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._holders: dict[str, set[EnvoyStream]] = {}  # store key -> local streams
        self._open: set[EnvoyStream] = set()

    @property
    def telemetry(self) -> QuotaTelemetry:
        return self._telemetry

    @property
    def open_streams(self) -> int:
        """Streams not yet closed (their end's store writes included)."""
        return len(self._open)

    def open_stream(self, peer: str) -> EnvoyStream:
        stream = EnvoyStream(f"{self._replica}#{next(self._streams)}", peer)
        self._open.add(stream)
        self._telemetry.stream_opened(stream.id, peer)
        return stream

    def end_streams(self) -> None:
        """Shutting down: end every stream now, so that Envoys reconnect (to another
        replica) at their next report instead of waiting for the grace period to cut them.
        They enforce their last assignments meanwhile."""
        for stream in self._open:
            stream.outbox.put_nowait(None)

    async def close_stream(self, stream: EnvoyStream) -> None:
        """The stream ended (the Envoy stopped, or will reconnect under a new id): its share
        is given back after RECONNECT_GRACE_S rather than the assignment TTL, so that its
        next stream's entry does not count it twice for long."""
        for key in stream.assigned:
            holders = self._holders.get(key)
            if holders is not None:
                holders.discard(stream)
                if not holders:
                    del self._holders[key]
        self._telemetry.stream_closed(stream.id, stream.peer, len(stream.assigned))
        refs = [EntryRef(key, stream.id) for key in stream.assigned]
        at = self._clock() + RECONNECT_GRACE_S
        try:
            await self._local.expire(refs, at)
            if self._store is not self._local:
                async with asyncio.timeout(self._store_timeout):
                    await self._store.expire(refs, at)
        except (StoreUnavailable, TimeoutError):
            pass  # the entries expire after the TTL instead
        finally:
            self._open.discard(stream)

    async def report(
        self, stream: EnvoyStream, domain: str, usages: Sequence[BucketUsage]
    ) -> list[Assignment]:
        """Record a usage report; the assignments to send back, one per bucket reported."""
        config = self._config()
        if config is None:
            raise QuotaServiceUnavailable("rate limiting is not configured")
        now = self._clock()
        with self._telemetry.report_span(stream.id, domain, len(usages)) as span:
            orders = descriptor_orders(config.settings.descriptors if config.settings else ())
            buckets = [
                resolve(config.rules, domain, usage.bucket_id, orders, config.shadow_mode)
                for usage in usages
            ]
            counted = [(u, b) for u, b in zip(usages, buckets, strict=True) if b.counted]
            for usage, bucket in zip(usages, buckets, strict=True):
                name = bucket.limit.name if bucket.limit is not None else None
                self._telemetry.usage(domain, name, usage)
            live, degraded = await self._record(stream, counted, config, now)
            assignments = []
            changed: list[ShareUpdate] = []
            for bucket in buckets:
                if not bucket.counted:
                    assignments.append(assignment(bucket, 0.0, config.ttl_s))
                elif degraded and config.store_unavailable != "local_shares":
                    strategy = (
                        Strategy.ALLOW_ALL
                        if config.store_unavailable == "allow_all"
                        else Strategy.DENY_ALL
                    )
                    assignments.append(blanket(bucket, strategy, config.ttl_s))
                else:
                    live_entries = live[bucket.store_key]
                    mine = self._share_out(stream, domain, bucket, live_entries, config, changed)
                    assignments.append(mine)
            await self._save_shares(changed)
            for sent in assignments:
                self._telemetry.assigned(domain, sent)
            span.set_attribute("authz.rlqs.degraded", degraded)
        return assignments

    async def _record(
        self,
        stream: EnvoyStream,
        counted: Sequence[tuple[BucketUsage, ResolvedBucket]],
        config: QuotaConfig,
        now: float,
    ) -> tuple[dict[str, list[EnvoyUsage]], bool]:
        """Each counted bucket's live entries, and whether they are only this replica's."""
        reports = [
            UsageReport(
                bucket.store_key,
                EnvoyUsage(
                    envoy=stream.id,
                    peer=stream.peer,
                    demand=demand_rate(usage.allowed, usage.denied, usage.elapsed_s),
                    allowed=usage.allowed,
                    denied=usage.denied,
                    expires_at=now + config.ttl_s,
                ),
            )
            for usage, bucket in counted
        ]
        keys = [report.bucket for report in reports]
        for key in keys:
            self._holders.setdefault(key, set()).add(stream)
        if not reports:
            return {}, False
        try:
            local = await self._local.record(reports, now)
            if self._store is self._local:
                self._outages.answered("quota_service")
                return dict(zip(keys, local, strict=True)), False
            # A report of thousands of buckets (per-user ones) gets time to match.
            async with asyncio.timeout(self._store_timeout + 0.002 * len(reports)):
                shared = await self._store.record(reports, now)
        except (StoreUnavailable, TimeoutError) as error:
            self._outages.failed("quota_service", f"answering {config.store_unavailable}", error)
            local = await self._local.read_many(keys, now)
            return dict(zip(keys, local, strict=True)), True
        self._outages.answered("quota_service")
        # This replica's own Envoys count even if the store lost them (Redis restarted empty):
        # otherwise the first to report after a loss gets the whole limit while the others,
        # unseen, keep their shares until their next report.
        merged = {
            key: list({u.envoy: u for u in (*theirs, *ours)}.values())
            for key, theirs, ours in zip(keys, shared, local, strict=True)
        }
        return merged, False

    def _share_out(
        self,
        stream: EnvoyStream,
        domain: str,
        bucket: ResolvedBucket,
        live: list[EnvoyUsage],
        config: QuotaConfig,
        changed: list[ShareUpdate],
    ) -> Assignment:
        """This Envoy's assignment for `bucket`; other local Envoys whose share changed get
        theirs pushed on their own streams. Shares that changed are added to `changed`."""
        assert bucket.limit is not None
        demands = {usage.envoy: usage.demand for usage in live}
        demands.setdefault(stream.id, UNKNOWN_DEMAND)
        shares = fair_shares(bucket.limit.requests_per_unit, demands, config.min_share)
        mine = assignment(bucket, shares[stream.id], config.ttl_s)
        self._note(domain, stream, bucket.store_key, mine, changed)
        for other in self._holders.get(bucket.store_key, ()):
            previous = other.assigned.get(bucket.store_key)
            if other is stream or previous is None or other.id not in shares:
                continue
            pushed = assignment(
                ResolvedBucket(
                    previous.bucket_id, bucket.entries, bucket.limit, bucket.why, bucket.store_key
                ),
                shares[other.id],
                config.ttl_s,
            )
            if not pushed.same_enforcement(previous):
                other.outbox.put_nowait([pushed])
                self._note(domain, other, bucket.store_key, pushed, changed)
        return mine

    async def _save_shares(self, changed: Sequence[ShareUpdate]) -> None:
        """Shares that changed, for admin views (one round trip for the whole report)."""
        if not changed:
            return
        await self._local.assign(changed)
        if self._store is not self._local:
            try:
                async with asyncio.timeout(self._store_timeout):
                    await self._store.assign(changed)
            except (StoreUnavailable, TimeoutError):
                pass  # admin views show the old share until the next change

    def _note(
        self,
        domain: str,
        stream: EnvoyStream,
        key: str,
        sent: Assignment,
        changed: list[ShareUpdate],
    ) -> None:
        previous = stream.assigned.get(key)
        if not sent.same_enforcement(previous):
            self._telemetry.rebalanced(domain, stream.id, sent, previous)
        if previous is None or previous.share != sent.share:
            changed.append(ShareUpdate(key, stream.id, sent.share))
        stream.assigned[key] = sent

    async def view(self, domain: str, entries: Sequence[Entry]) -> QuotaUsageView | None:
        """A bucket's global usage and each Envoy's share (admin quota, explain); None when
        no limit of the domain governs it."""
        config = self._config()
        if config is None:
            return None
        orders = descriptor_orders(config.settings.descriptors if config.settings else ())
        bucket = resolve(config.rules, domain, tuple(entries), orders, config.shadow_mode)
        if bucket.limit is None:
            return None
        now = self._clock()
        local_only = False
        envoys: list[EnvoyUsage] = []
        if bucket.counted:
            try:
                async with asyncio.timeout(self._store_timeout):
                    envoys = await self._store.read(bucket.store_key, now)
            except (StoreUnavailable, TimeoutError):
                envoys, local_only = await self._local.read(bucket.store_key, now), True
        return QuotaUsageView(bucket, sorted(envoys, key=lambda u: u.envoy), now, local_only)

    async def close(self) -> None:
        await self._store.close()
        if self._local is not self._store:
            await self._local.close()

    def holders(self, store_key: str) -> int:
        """Streams of this replica holding the bucket (tests, admin)."""
        return len(self._holders.get(store_key, ()))
