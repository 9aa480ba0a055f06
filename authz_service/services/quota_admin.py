"""Reading and resetting rate-limit counters for operators (admin API)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from authz_service.errors import QuotaUnavailable
from authz_service.ratelimit.limiter import RateLimiter
from authz_service.ratelimit.store import StoreUnavailable

__all__ = ["QuotaAdmin", "QuotaCounter", "QuotaUnavailable"]


@dataclass(frozen=True, slots=True)
class QuotaCounter:
    limit_name: str
    requests_per_unit: int
    unit: str
    window_seconds: float
    used: int
    remaining: int
    reset_in_seconds: float


class QuotaAdmin:
    def __init__(self, limiter: Callable[[], RateLimiter | None]) -> None:
        self._limiter = limiter

    async def counters(
        self, domain: str, entries: Sequence[tuple[str, str]], *, reset: bool = False
    ) -> list[QuotaCounter]:
        """One counter per limit of the descriptor (a per-second AND a per-day limit: both).
        With `reset`, every one of them is cleared first, and the counters returned are those
        reset."""
        limiter = self._limiter()
        if limiter is None:
            raise QuotaUnavailable("rate limiting is not configured")
        if not limiter.config.get_limits(domain, entries):
            raise QuotaUnavailable(f"no limit matches {domain} {list(entries)}")
        try:
            if reset:
                await limiter.reset(domain, entries)
            counted = await limiter.limit_counters(domain, entries)
        except StoreUnavailable as error:
            raise QuotaUnavailable(f"quota store unavailable: {error}") from None
        return [
            QuotaCounter(
                limit_name=limit.name,
                requests_per_unit=limit.requests_per_unit,
                unit=str(limit.unit),
                window_seconds=limit.window_s,
                used=max(0, limit.requests_per_unit - verdict.remaining),
                remaining=verdict.remaining,
                reset_in_seconds=verdict.reset_after,
            )
            for limit, verdict in counted
        ]
