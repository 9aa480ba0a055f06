"""Reading and resetting rate-limit counters for operators (admin API)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from authz_service.ratelimit.limiter import RateLimiter
from authz_service.ratelimit.model import Descriptor, RateLimitRequestData
from authz_service.ratelimit.store import StoreUnavailable


class QuotaUnavailable(Exception):
    """Rate limiting is not configured, the descriptor has no limit, or the store is down."""


@dataclass(frozen=True, slots=True)
class QuotaCounter:
    limit_name: str
    requests_per_unit: int
    unit: str
    used: int
    remaining: int
    reset_in_seconds: float


class QuotaAdmin:
    def __init__(self, limiter: Callable[[], RateLimiter | None]) -> None:
        self._limiter = limiter

    async def counters(
        self, domain: str, entries: Sequence[tuple[str, str]], *, reset: bool = False
    ) -> list[QuotaCounter]:
        limiter = self._limiter()
        if limiter is None:
            raise QuotaUnavailable("rate limiting is not configured")
        if not limiter.config.get_limits(domain, entries):
            raise QuotaUnavailable(f"no limit matches {domain} {list(entries)}")
        try:
            if reset:
                await limiter.reset(domain, entries)
            # hits_addend 0 on the descriptor: look without charging.
            request = RateLimitRequestData(domain, (Descriptor(tuple(entries), hits_addend=0),))
            result = await limiter.should_rate_limit(request)
        except StoreUnavailable as error:
            raise QuotaUnavailable(f"quota store unavailable: {error}") from None
        counters = []
        for status in result.statuses:
            limit = status.current_limit
            if limit is None:
                continue
            counters.append(
                QuotaCounter(
                    limit_name=limit.name,
                    requests_per_unit=limit.requests_per_unit,
                    unit=str(limit.unit),
                    used=max(0, limit.requests_per_unit - status.limit_remaining),
                    remaining=status.limit_remaining,
                    reset_in_seconds=status.duration_until_reset,
                )
            )
        return counters
