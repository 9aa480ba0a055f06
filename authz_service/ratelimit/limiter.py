"""The rate-limit use case: descriptors in, one store call, a decision out.

Used by the RateLimitService servicer (`should_rate_limit`), by ext_authz Check for quota in
the same call (`check_descriptors`, `preview_descriptors` for explain), by the quota admin API
(`reset`, `limit_counters`) and for brute-force defence (`record_auth_failure`,
`lockout_state`). Semantics follow envoyproxy/ratelimit's service (src/service/ratelimit.go);
which counters a request touches is `counters.py`, how verdicts become statuses is
`descriptor_status.py`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Literal

from authz_service.ratelimit.algorithms import Verdict
from authz_service.ratelimit.counters import counter_base, limit_hit, lockout_hit
from authz_service.ratelimit.descriptor_status import degraded_result, descriptor_status
from authz_service.ratelimit.hit_plans import HitPlans
from authz_service.ratelimit.outages import StoreOutages
from authz_service.ratelimit.results import (
    Code,
    Descriptor,
    DescriptorStatus,
    Entry,
    LockoutState,
    RateLimitRequestData,
    RateLimitResult,
)
from authz_service.ratelimit.rules import Limit, RateLimitRules
from authz_service.ratelimit.store import Hit, QuotaStore, StoreUnavailable
from authz_service.schema import BruteForceSettings

FailureMode = Literal["unavailable", "allow", "deny"]


class RateLimiter:
    def __init__(
        self,
        config: RateLimitRules,
        store: QuotaStore,
        *,
        shadow_mode: bool = False,
        failure_mode: FailureMode = "unavailable",
        brute_force: BruteForceSettings | None = None,
        clock: Callable[[], float] = time.time,
        outages: StoreOutages | None = None,
    ) -> None:
        self._config = config
        self._plans = HitPlans(config)
        self._store = store
        self._shadow_mode = shadow_mode
        self._failure_mode = failure_mode
        self._brute_force = settings = brute_force or BruteForceSettings()
        self._clock = clock
        # Every Check looks up its client's lockout: the counter key of an address (its /64
        # for IPv6, escaped) is worked out once per distinct address, not per Check.
        self._lockout_lookup: Callable[[str], Hit] = functools.lru_cache(maxsize=4096)(
            lambda client_ip: lockout_hit(client_ip, settings, 0)
        )
        # Shared with the store's other users and kept across reloads (see compile_config).
        self._outages = outages if outages is not None else StoreOutages()

    @property
    def config(self) -> RateLimitRules:
        return self._config

    async def close(self) -> None:
        await self._store.close()

    async def should_rate_limit(
        self, request: RateLimitRequestData, now: float | None = None
    ) -> RateLimitResult:
        """Raises StoreUnavailable only when failure_mode is "unavailable"."""
        return await self._evaluate(request, now, preview=False)

    async def preview_descriptors(
        self, domain: str, descriptors: Sequence[Sequence[Entry]], now: float | None = None
    ) -> RateLimitResult:
        """What one more request on these descriptors would be answered, charging nothing
        (explain). Raises StoreUnavailable only when failure_mode is "unavailable"."""
        request = RateLimitRequestData(
            domain, tuple(Descriptor(tuple(entries), hits_addend=0) for entries in descriptors)
        )
        return await self._evaluate(request, now, preview=True)

    async def check_descriptors(
        self,
        domain: str,
        descriptors: Sequence[Sequence[Entry]],
        hits_addend: int = 1,
        now: float | None = None,
    ) -> RateLimitResult:
        """For ext_authz Check: enforce `domain`'s limits on descriptors built from identity."""
        request = RateLimitRequestData(
            domain, tuple(Descriptor(tuple(entries)) for entries in descriptors), hits_addend
        )
        return await self.should_rate_limit(request, now)

    async def _evaluate(
        self, request: RateLimitRequestData, now: float | None, *, preview: bool
    ) -> RateLimitResult:
        plan = self._plans.plan(request)
        per_descriptor, hits = plan.per_descriptor, plan.hits
        if not hits:
            verdicts = []
        else:
            try:
                verdicts = await self._store.apply(hits, self._now(now))
            except StoreUnavailable as error:
                self._outages.failed("rate_limit", f"answering {self._failure_mode}", error)
                if self._failure_mode == "unavailable":
                    raise
                return degraded_result(per_descriptor, deny=self._failure_mode == "deny")
            self._outages.answered("rate_limit")
        if preview:
            # Charged nothing: the next request is refused where nothing is left.
            verdicts = [replace(v, allowed=v.allowed and v.remaining >= 1) for v in verdicts]
        statuses: list[DescriptorStatus] = []
        offset = 0
        for p in per_descriptor:
            statuses.append(descriptor_status(p, verdicts[offset : offset + len(p.hits)]))
            offset += len(p.hits)
        over = any(s.code is Code.OVER_LIMIT for s in statuses)
        # Global shadow mode: statuses still tell the truth, the answer never blocks.
        overall = Code.OVER_LIMIT if over and not self._shadow_mode else Code.OK
        return RateLimitResult(overall, tuple(statuses))

    async def reset(
        self, domain: str, entries: Sequence[Entry], now: float | None = None
    ) -> tuple[Limit, ...]:
        """Forget the counters of every limit matching this descriptor (admin API); returns
        the limits whose counters were reset."""
        found = self._config.match(domain, entries)
        if found is None:
            return ()
        base = counter_base(domain, found.counter_entries)
        limits = tuple(limit for limit in found.limits if not limit.unlimited)
        await self._store.reset([limit_hit(base, limit, 0) for limit in limits], self._now(now))
        return limits

    async def limit_counters(
        self, domain: str, entries: Sequence[Entry], now: float | None = None
    ) -> list[tuple[Limit, Verdict]]:
        """Every limit this descriptor is counted against, each with its own verdict, charging
        nothing (admin quota). A ShouldRateLimit status shows only the tightest of them.
        Raises StoreUnavailable."""
        found = self._config.match(domain, entries)
        if found is None:
            return []
        base = counter_base(domain, found.counter_entries)
        limits = [limit for limit in found.limits if not limit.unlimited]
        hits = [limit_hit(base, limit, 0) for limit in limits]
        verdicts = await self._store.apply(hits, self._now(now)) if hits else []
        return list(zip(limits, verdicts, strict=True))

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    @property
    def brute_force_enabled(self) -> bool:
        return self._brute_force.enabled

    async def record_auth_failure(self, client_ip: str, now: float | None = None) -> LockoutState:
        """Count a failed authentication; returns whether the client is now locked out."""
        return await self._lockout(client_ip, 1, now)

    async def lockout_state(self, client_ip: str, now: float | None = None) -> LockoutState:
        """Look without counting: is this client locked out, and for how long."""
        return await self._lockout(client_ip, 0, now)

    async def _lockout(self, client_ip: str, hits: int, now: float | None) -> LockoutState:
        settings = self._brute_force
        if not settings.enabled or not client_ip:
            return LockoutState(False)
        # Only an address-sized string is kept by the lookup cache.
        looked_up = not hits and len(client_ip) <= 64
        hit = (
            self._lockout_lookup(client_ip) if looked_up else lockout_hit(client_ip, settings, hits)
        )
        try:
            (verdict,) = await self._store.apply([hit], self._now(now))
        except StoreUnavailable as error:
            # Defence in depth only: with the store down, do not lock every client out.
            self._outages.failed("lockout", "brute-force lockout not enforced", error)
            return LockoutState(False)
        self._outages.answered("lockout")
        if verdict.allowed:
            return LockoutState(False, 0.0, verdict.remaining)
        return LockoutState(True, verdict.reset_after, 0)
