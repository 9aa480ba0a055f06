"""Which hits a request makes, remembered: a warm request repeats the same descriptors.

Working out a request's hits (rule matching, `replaces`, counter names) cost about as much
CPU as the Redis round trip itself (benchmarks/ratelimit_rls.py). It depends only on the
request and the rules, and a limiter's rules never change (a reload builds a new limiter), so
the answer is kept per request. Descriptor values come from clients (addresses, users): the
cache is bounded, and when full the oldest entry makes room. An entry and the request it keeps
take about 2 KB with three descriptors: ~8 MB when full.
"""

from __future__ import annotations

from dataclasses import dataclass

from authz_service.ratelimit.descriptor_status import DescriptorHits, hits_per_descriptor
from authz_service.ratelimit.results import RateLimitRequestData
from authz_service.ratelimit.rules import RateLimitRules
from authz_service.ratelimit.store import Hit

DEFAULT_MAX_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class HitPlan:
    per_descriptor: tuple[DescriptorHits, ...]
    hits: tuple[Hit, ...]  # every descriptor's hits, in order: what the store applies


class HitPlans:
    def __init__(self, rules: RateLimitRules, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._rules = rules
        self._max_entries = max_entries
        self._plans: dict[RateLimitRequestData, HitPlan] = {}

    def plan(self, request: RateLimitRequestData) -> HitPlan:
        found = self._plans.get(request)
        if found is not None:
            return found
        per_descriptor = tuple(hits_per_descriptor(self._rules, request))
        found = HitPlan(per_descriptor, tuple(hit for p in per_descriptor for hit in p.hits))
        if self._max_entries <= 0:
            return found
        if len(self._plans) >= self._max_entries:
            del self._plans[next(iter(self._plans))]  # dicts keep insertion order
        self._plans[request] = found
        return found

    def __len__(self) -> int:
        return len(self._plans)
