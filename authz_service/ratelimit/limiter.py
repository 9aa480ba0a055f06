"""The rate-limit use case: descriptors in, one store call, a decision out.

Used by the RateLimitService servicer (`should_rate_limit`), by ext_authz Check for quota in
the same call (`check_descriptors`), and for brute-force defence (`record_auth_failure`,
`is_locked_out`). Semantics follow envoyproxy/ratelimit's service (src/service/ratelimit.go).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import quote

from authz_service.ratelimit.algorithms import Verdict
from authz_service.ratelimit.lockout_subject import lockout_subject
from authz_service.ratelimit.outages import StoreOutages
from authz_service.ratelimit.results import (
    UNLIMITED_REMAINING,
    Code,
    CurrentLimit,
    Descriptor,
    DescriptorStatus,
    Entry,
    LockoutState,
    RateLimitRequestData,
    RateLimitResult,
)
from authz_service.ratelimit.rules import Limit, RateLimitRules
from authz_service.ratelimit.store import Hit, QuotaStore, StoreUnavailable
from authz_service.schema import UNIT_SECONDS, BruteForceSettings

FailureMode = Literal["unavailable", "allow", "deny"]

_BRUTE_FORCE_DOMAIN = "_auth_failures"
_UNLIMITED_STATUS = DescriptorStatus(Code.OK, None, UNLIMITED_REMAINING)
_UNMATCHED_STATUS = DescriptorStatus(Code.OK)


def _escape(text: str) -> str:
    # Keeps `|`, `=` and the hash-tag braces unambiguous inside counter names.
    return quote(text, safe="") if any(c in text for c in "|={}%") else text


def counter_base(domain: str, entries: Iterable[Entry]) -> str:
    """`{domain|k=v|...}`: the braces are the Redis Cluster hash tag, one slot per descriptor."""
    parts = [_escape(domain), *(f"{_escape(k)}={_escape(v)}" for k, v in entries)]
    return "{" + "|".join(parts) + "}"


@dataclass(frozen=True, slots=True)
class _DescriptorHits:
    """One descriptor: its limits after `replaces`/`unlimited`, and their hits."""

    limits: tuple[Limit, ...]
    hits: tuple[Hit, ...]
    unlimited: bool = False


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
        self._store = store
        self._shadow_mode = shadow_mode
        self._failure_mode = failure_mode
        self._brute_force = brute_force or BruteForceSettings()
        self._clock = clock
        # Shared with the store's other users and kept across reloads (see compile_config).
        self._outages = outages if outages is not None else StoreOutages()

    @property
    def config(self) -> RateLimitRules:
        return self._config

    @property
    def store(self) -> QuotaStore:
        return self._store

    @property
    def outages(self) -> StoreOutages:
        return self._outages

    def with_config(self, config: RateLimitRules) -> RateLimiter:
        """A limiter on the same store (counters, connections) with a reloaded config."""
        clone = RateLimiter.__new__(RateLimiter)
        kept = ("_store", "_shadow_mode", "_failure_mode", "_brute_force", "_clock", "_outages")
        for name in kept:
            setattr(clone, name, getattr(self, name))
        clone._config = config
        return clone

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

    async def _evaluate(
        self, request: RateLimitRequestData, now: float | None, *, preview: bool
    ) -> RateLimitResult:
        at = self._clock() if now is None else now
        per_descriptor = self._hits_per_descriptor(request)
        hits = [hit for p in per_descriptor for hit in p.hits]
        if not hits:
            verdicts = []
        else:
            try:
                verdicts = await self._store.apply(hits, at)
            except StoreUnavailable as error:
                self._outages.failed("rate_limit", f"answering {self._failure_mode}", error)
                if self._failure_mode == "unavailable":
                    raise
                return self._degraded(per_descriptor)
            self._outages.answered("rate_limit")
        if preview:
            # Charged nothing: the next request is refused where nothing is left.
            verdicts = [replace(v, allowed=v.allowed and v.remaining >= 1) for v in verdicts]
        statuses: list[DescriptorStatus] = []
        offset = 0
        for p in per_descriptor:
            statuses.append(_status(p, verdicts[offset : offset + len(p.hits)]))
            offset += len(p.hits)
        over = any(s.code is Code.OVER_LIMIT for s in statuses)
        # Global shadow mode: statuses still tell the truth, the answer never blocks.
        overall = Code.OVER_LIMIT if over and not self._shadow_mode else Code.OK
        return RateLimitResult(overall, tuple(statuses))

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
        await self._store.reset([_hit(base, limit, 0) for limit in limits], self._now(now))
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
        hits = [_hit(base, limit, 0) for limit in limits]
        verdicts = await self._store.apply(hits, self._now(now)) if hits else []
        return list(zip(limits, verdicts, strict=True))

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    async def record_auth_failure(self, client_ip: str, now: float | None = None) -> LockoutState:
        """Count a failed authentication; returns whether the client is now locked out."""
        return await self._lockout(client_ip, 1, now)

    async def is_locked_out(self, client_ip: str, now: float | None = None) -> bool:
        return (await self._lockout(client_ip, 0, now)).locked

    async def lockout_state(self, client_ip: str, now: float | None = None) -> LockoutState:
        """Look without counting: is this client locked out, and for how long."""
        return await self._lockout(client_ip, 0, now)

    @property
    def brute_force_enabled(self) -> bool:
        return self._brute_force.enabled

    async def reset_lockout(self, client_ip: str, now: float | None = None) -> None:
        at = self._clock() if now is None else now
        await self._store.reset([self._lockout_hit(client_ip, 0)], at)

    async def _lockout(self, client_ip: str, hits: int, now: float | None) -> LockoutState:
        settings = self._brute_force
        if not settings.enabled or not client_ip:
            return LockoutState(False)
        hit = self._lockout_hit(client_ip, hits)
        try:
            (verdict,) = await self._store.apply([hit], self._clock() if now is None else now)
        except StoreUnavailable as error:
            # Defence in depth only: with the store down, do not lock every client out.
            self._outages.failed("lockout", "brute-force lockout not enforced", error)
            return LockoutState(False)
        self._outages.answered("lockout")
        if verdict.allowed:
            return LockoutState(False, 0.0, verdict.remaining)
        return LockoutState(True, verdict.reset_after, 0)

    def _lockout_hit(self, client_ip: str, hits: int) -> Hit:
        settings = self._brute_force
        subject = lockout_subject(client_ip, settings.ipv6_prefix_length)
        return Hit(
            key=counter_base(_BRUTE_FORCE_DOMAIN, [("client_ip", subject)]),
            algorithm="lockout",
            limit=settings.max_failures,
            window_s=settings.window,
            hits=hits,
            lockout_s=settings.lockout,
        )

    def _hits_per_descriptor(self, request: RateLimitRequestData) -> list[_DescriptorHits]:
        found = [self._limits_for(request.domain, d) for d in request.descriptors]
        # `replaces` works across the request's descriptors, unlimited ones included.
        replaced = {name for limits, _ in found for limit in limits for name in limit.replaces}
        per_descriptor: list[_DescriptorHits] = []
        for descriptor, (limits, entries) in zip(request.descriptors, found, strict=True):
            if any(limit.unlimited for limit in limits):
                per_descriptor.append(_DescriptorHits((), (), unlimited=True))
                continue
            kept = tuple(lim for lim in limits if not lim.name or lim.name not in replaced)
            base = counter_base(request.domain, entries)
            hits = request.hits_for(descriptor)
            per_descriptor.append(
                _DescriptorHits(kept, tuple(_hit(base, lim, hits) for lim in kept))
            )
        return per_descriptor

    def _limits_for(
        self, domain: str, descriptor: Descriptor
    ) -> tuple[tuple[Limit, ...], tuple[Entry, ...]]:
        override = descriptor.limit
        if override is not None and self._config.has_domain(domain):
            # As in envoyproxy/ratelimit: an override is a plain fixed window, never shadowed.
            window = float(UNIT_SECONDS[override.unit])
            return (Limit(override.requests_per_unit, override.unit, window),), descriptor.entries
        found = self._config.match(domain, descriptor.entries)
        if found is None:
            return (), descriptor.entries
        return found.limits, found.counter_entries

    def _degraded(self, per_descriptor: Sequence[_DescriptorHits]) -> RateLimitResult:
        deny = self._failure_mode == "deny"
        statuses = tuple(
            DescriptorStatus(Code.OVER_LIMIT if deny and p.hits else Code.OK, None, 0)
            for p in per_descriptor
        )
        overall = Code.OVER_LIMIT if any(s.code is Code.OVER_LIMIT for s in statuses) else Code.OK
        return RateLimitResult(overall, statuses, degraded=True)


def _status(descriptor: _DescriptorHits, verdicts: Sequence[Verdict]) -> DescriptorStatus:
    if descriptor.unlimited:
        return _UNLIMITED_STATUS
    if not descriptor.limits:
        return _UNMATCHED_STATUS
    candidates = [
        (limit, verdict, not verdict.allowed and not limit.shadow_mode)
        for limit, verdict in zip(descriptor.limits, verdicts, strict=True)
    ]
    blocking = [c for c in candidates if c[2]]
    if blocking:
        # Report the limit that keeps the caller out longest.
        limit, verdict, _ = max(blocking, key=lambda c: c[1].reset_after)
        return DescriptorStatus(Code.OVER_LIMIT, _current(limit), 0, verdict.reset_after)
    limit, verdict, _ = min(candidates, key=lambda c: (c[1].remaining, -c[1].reset_after))
    return DescriptorStatus(Code.OK, _current(limit), verdict.remaining, verdict.reset_after)


def _hit(base: str, limit: Limit, hits: int) -> Hit:
    return Hit(
        key=f"{base}|{limit.counter_tag}",
        algorithm=limit.algorithm if limit.algorithm != "gcra" else "token_bucket",
        limit=limit.requests_per_unit,
        window_s=limit.window_s,
        hits=hits,
        charge_rejected=limit.charge_rejected,
    )


def _current(limit: Limit) -> CurrentLimit:
    exact = limit.window_s == UNIT_SECONDS[limit.unit]
    return CurrentLimit(
        limit.requests_per_unit, limit.unit, limit.name, None if exact else limit.window_s
    )
