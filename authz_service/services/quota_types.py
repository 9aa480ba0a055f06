"""The quota service's values: the config a report reads, an open stream, a bucket's view."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from authz_service.errors import QuotaUnavailable
from authz_service.ratelimit.quota_assignments import Assignment
from authz_service.ratelimit.rules import RateLimitRules
from authz_service.ratelimit.usage_store import EnvoyUsage
from authz_service.schema import QuotaServiceSettings
from authz_service.services.quota_buckets import ResolvedBucket

# Without a `quota_service:` section the service still answers RLQS streams for the
# `rate_limit` domains, with these settings (bucket keys then ordered alphabetically).
DEFAULT_TTL_S = 15
DEFAULT_MIN_SHARE = 0.1


@dataclass(frozen=True, slots=True)
class QuotaUsageView:
    """One bucket as the quota service sees it: its limit, every Envoy reporting it."""

    bucket: ResolvedBucket
    envoys: list[EnvoyUsage]
    now: float
    local_only: bool  # the store did not answer: this replica's Envoys only

    @property
    def demand(self) -> float:
        return sum(max(0.0, usage.demand) for usage in self.envoys)

    @property
    def allowed(self) -> int:
        return sum(usage.allowed for usage in self.envoys)

    @property
    def denied(self) -> int:
        return sum(usage.denied for usage in self.envoys)


class QuotaServiceUnavailable(QuotaUnavailable):
    """No rate limits are configured: there is nothing to assign."""


@dataclass(frozen=True, slots=True)
class QuotaConfig:
    """What one report reads from the config in force (a reload swaps it)."""

    rules: RateLimitRules
    settings: QuotaServiceSettings | None
    shadow_mode: bool = False

    @property
    def ttl_s(self) -> int:
        return int(self.settings.assignment_ttl) if self.settings else DEFAULT_TTL_S

    @property
    def min_share(self) -> float:
        return self.settings.min_share if self.settings else DEFAULT_MIN_SHARE

    @property
    def store_unavailable(self) -> str:
        return self.settings.store_unavailable if self.settings else "local_shares"


ConfigProvider = Callable[[], QuotaConfig | None]


@dataclass(eq=False)
class EnvoyStream:
    """One open RLQS stream: one Envoy (or one filter of one Envoy)."""

    id: str
    peer: str
    # Assignments to send, answers and pushes alike; None: end the stream (shutting down).
    outbox: asyncio.Queue[list[Assignment] | None] = field(default_factory=asyncio.Queue)
    # store key -> the last assignment sent for that bucket
    assigned: dict[str, Assignment] = field(default_factory=dict)
