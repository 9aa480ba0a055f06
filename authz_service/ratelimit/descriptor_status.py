"""A request's descriptors -> the hits to apply; the store's verdicts -> one status each.

Pure: no store, no clock. Semantics follow envoyproxy/ratelimit (src/service/ratelimit.go):
`replaces` works across the request's descriptors, an `unlimited` descriptor reports the
maximum remaining, a request's `limit` override is a plain fixed window never shadowed, and a
descriptor's status is that of its limit which keeps the caller out longest, or else of the
one with the least left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from authz_service.ratelimit.algorithms import Verdict
from authz_service.ratelimit.counters import counter_base, limit_hit
from authz_service.ratelimit.results import (
    UNLIMITED_REMAINING,
    Code,
    CurrentLimit,
    Descriptor,
    DescriptorStatus,
    Entry,
    RateLimitRequestData,
    RateLimitResult,
)
from authz_service.ratelimit.rules import Limit, RateLimitRules
from authz_service.ratelimit.store import Hit
from authz_service.schema import UNIT_SECONDS

_UNLIMITED_STATUS = DescriptorStatus(Code.OK, None, UNLIMITED_REMAINING)
_UNMATCHED_STATUS = DescriptorStatus(Code.OK)


@dataclass(frozen=True, slots=True)
class DescriptorHits:
    """One descriptor: its limits after `replaces`/`unlimited`, and their hits."""

    limits: tuple[Limit, ...]
    hits: tuple[Hit, ...]
    unlimited: bool = False


def hits_per_descriptor(
    rules: RateLimitRules, request: RateLimitRequestData
) -> list[DescriptorHits]:
    found = [_limits_for(rules, request.domain, d) for d in request.descriptors]
    # `replaces` works across the request's descriptors, unlimited ones included.
    replaced = {name for limits, _ in found for limit in limits for name in limit.replaces}
    per_descriptor: list[DescriptorHits] = []
    for descriptor, (limits, entries) in zip(request.descriptors, found, strict=True):
        if any(limit.unlimited for limit in limits):
            per_descriptor.append(DescriptorHits((), (), unlimited=True))
            continue
        kept = tuple(lim for lim in limits if not lim.name or lim.name not in replaced)
        base = counter_base(request.domain, entries)
        hits = request.hits_for(descriptor)
        per_descriptor.append(
            DescriptorHits(kept, tuple(limit_hit(base, lim, hits) for lim in kept))
        )
    return per_descriptor


def _limits_for(
    rules: RateLimitRules, domain: str, descriptor: Descriptor
) -> tuple[tuple[Limit, ...], tuple[Entry, ...]]:
    override = descriptor.limit
    if override is not None and rules.has_domain(domain):
        # As in envoyproxy/ratelimit: an override is a plain fixed window, never shadowed.
        window = float(UNIT_SECONDS[override.unit])
        return (Limit(override.requests_per_unit, override.unit, window),), descriptor.entries
    found = rules.match(domain, descriptor.entries)
    if found is None:
        return (), descriptor.entries
    return found.limits, found.counter_entries


def descriptor_status(descriptor: DescriptorHits, verdicts: Sequence[Verdict]) -> DescriptorStatus:
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
        return DescriptorStatus(Code.OVER_LIMIT, _current_limit(limit), 0, verdict.reset_after)
    limit, verdict, _ = min(candidates, key=lambda c: (c[1].remaining, -c[1].reset_after))
    return DescriptorStatus(Code.OK, _current_limit(limit), verdict.remaining, verdict.reset_after)


def degraded_result(per_descriptor: Sequence[DescriptorHits], deny: bool) -> RateLimitResult:
    """The answer without the store: every limited descriptor over (deny) or ok (allow)."""
    statuses = tuple(
        DescriptorStatus(Code.OVER_LIMIT if deny and p.hits else Code.OK, None, 0)
        for p in per_descriptor
    )
    overall = Code.OVER_LIMIT if any(s.code is Code.OVER_LIMIT for s in statuses) else Code.OK
    return RateLimitResult(overall, statuses, degraded=True)


def _current_limit(limit: Limit) -> CurrentLimit:
    exact = limit.window_s == UNIT_SECONDS[limit.unit]
    return CurrentLimit(
        limit.requests_per_unit, limit.unit, limit.name, None if exact else limit.window_s
    )
