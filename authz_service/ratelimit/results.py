"""Core request/answer types of the rate limiter: plain values, no protobuf."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from authz_service.schema import Unit

Entry = tuple[str, str]

UNLIMITED_REMAINING = 2**32 - 1  # what envoyproxy/ratelimit reports for `unlimited`


class Code(enum.StrEnum):
    OK = "ok"
    OVER_LIMIT = "over_limit"


@dataclass(frozen=True, slots=True)
class LimitOverride:
    """A `limit` carried by the request's descriptor (Envoy's `limit` override)."""

    requests_per_unit: int
    unit: Unit


@dataclass(frozen=True, slots=True)
class Descriptor:
    entries: tuple[Entry, ...]
    limit: LimitOverride | None = None
    hits_addend: int | None = None  # None: the request's; 0 = only check


@dataclass(frozen=True, slots=True)
class RateLimitRequestData:
    domain: str
    descriptors: tuple[Descriptor, ...]
    hits_addend: int = 0  # 0 means 1, as in Envoy's API

    def hits_for(self, descriptor: Descriptor) -> int:
        if descriptor.hits_addend is not None:
            return descriptor.hits_addend
        return max(1, self.hits_addend)


@dataclass(frozen=True, slots=True)
class CurrentLimit:
    requests_per_unit: int
    unit: Unit
    name: str = ""
    # Set when the window is not one whole `unit` (e.g. 5 minutes): Envoy's API can only say
    # `unit`, but the headers this service writes itself (quota in Check) tell the truth.
    window_s: float | None = None


@dataclass(frozen=True, slots=True)
class DescriptorStatus:
    code: Code
    current_limit: CurrentLimit | None = None
    limit_remaining: int = 0
    duration_until_reset: float = 0.0  # seconds


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    overall_code: Code
    statuses: tuple[DescriptorStatus, ...]
    # The store could not answer and the configured failure_mode produced this answer.
    degraded: bool = False

    @property
    def over_limit(self) -> bool:
        return self.overall_code is Code.OVER_LIMIT

    @property
    def tripped(self) -> list[str]:
        """Names of the limits over (sorted; "unnamed" for those without), shadowed included."""
        return sorted(
            {
                s.current_limit.name or "unnamed"
                for s in self.statuses
                if s.current_limit is not None and s.code is Code.OVER_LIMIT
            }
        )

    @property
    def tightest(self) -> DescriptorStatus | None:
        """The status that drives X-RateLimit headers: an over-limit one, else least remaining."""
        limited = [s for s in self.statuses if s.current_limit is not None]
        if not limited:
            return None
        return min(
            limited,
            key=lambda s: (
                s.code is not Code.OVER_LIMIT,
                s.limit_remaining,
                -s.duration_until_reset,
            ),
        )


@dataclass(frozen=True, slots=True)
class LockoutState:
    locked: bool
    retry_after: float = 0.0  # seconds until the lockout ends (0 when not locked)
    failures_left: int = 0  # failures still allowed before a lockout
