"""The `rate_limit:` section (the quota store, its breaker, brute-force lockout, the limits)
and `check_quota:` (quota enforced inside Check). Defaults sit beside each field."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from authz_service.schema.base import Duration, HeaderName, Strict, header_name
from authz_service.schema.ratelimit_rules import DomainSpec
from authz_service.schema.redis import RedisSettings


class CircuitBreakerSettings(Strict):
    # Consecutive store failures that open the breaker.
    failure_threshold: int = Field(default=5, ge=1)
    # How long it stays open (answering at once) before one probe call is let through.
    open_for: Duration = 5.0


class BruteForceSettings(Strict):
    """A client IP with `max_failures` failed authentications within `window` is locked out."""

    enabled: bool = False
    max_failures: int = Field(default=10, ge=1)
    window: Duration = 60.0
    lockout: Duration = 300.0
    # IPv6 clients are counted per network of this prefix (a host often owns a whole /64);
    # IPv4 per address, and IPv4-mapped IPv6 as the IPv4 address.
    ipv6_prefix_length: int = Field(default=64, ge=1, le=128)


class RateLimitSettings(Strict):
    """Example (YAML):

    rate_limit:
      store: redis
      redis: {url: "redis://redis:6379/0", key_prefix: "authz:rl:", timeout_ms: 50}
      failure_mode: unavailable
      circuit_breaker: {failure_threshold: 5, open_for: 5s}
      config_dir: /etc/authz/ratelimit
      local_over_limit_cache: true
      brute_force: {enabled: true, max_failures: 10, window: 1m, lockout: 5m}
    """

    store: Literal["memory", "redis"] = "memory"
    redis: RedisSettings = RedisSettings()
    # Store down: "unavailable" answers gRPC UNAVAILABLE fast so Envoy's failure_mode_deny
    # decides; "allow" answers OK and "deny" answers OVER_LIMIT from the service itself.
    failure_mode: Literal["unavailable", "allow", "deny"] = "unavailable"
    circuit_breaker: CircuitBreakerSettings = CircuitBreakerSettings()
    # A directory of envoyproxy/ratelimit YAML files, and/or the same documents inline.
    config_dir: Path | None = None
    domains: tuple[DomainSpec, ...] = ()
    # Count every limit but never block (answers OK; statuses still say OVER_LIMIT).
    shadow_mode: bool = False
    # Remember keys found over their limit until their window ends: abusive traffic is
    # answered in-process instead of reaching Redis.
    local_over_limit_cache: bool = True
    local_cache_max_entries: int = Field(default=100_000, ge=1)
    # `store: memory` only: the most counters it holds (~200 B each). When full of live
    # counters, a request needing a new one meets `failure_mode`; known ones keep counting.
    memory_max_keys: int = Field(default=1_000_000, ge=1)
    brute_force: BruteForceSettings = BruteForceSettings()

    @model_validator(mode="after")
    def _unique_domains(self) -> RateLimitSettings:
        names = [d.domain for d in self.domains]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate domain {duplicates[0]!r} in rate_limit.domains")
        return self


# bound_key: the key or certificate a sender-constrained token is bound to ("jkt:<thumbprint>"
# for DPoP, "x5t:<thumbprint>" for RFC 8705); an unbound token has none (descriptor dropped).
QuotaSource = Literal[
    "client_ip", "principal", "tier", "auth_method", "method", "host", "path", "bound_key"
]


class QuotaEntry(Strict):
    """One descriptor entry: a key and where its value comes from (exactly one source)."""

    key: str = Field(min_length=1)
    value: str | None = None  # a literal
    source: QuotaSource | None = None  # from the request or the identity just established
    header: HeaderName | None = None  # a request header
    context: str | None = None  # an Envoy context_extensions entry

    @model_validator(mode="after")
    def _one_source(self) -> QuotaEntry:
        given = [v for v in (self.value, self.source, self.header, self.context) if v is not None]
        if len(given) != 1:
            raise ValueError(
                f"entry {self.key!r} needs exactly one of 'value', 'source', 'header', 'context'"
            )
        if self.header is not None:
            object.__setattr__(self, "header", header_name(self.header))
        return self


class QuotaDescriptor(Strict):
    entries: list[QuotaEntry] = Field(min_length=1)
    # Only for these methods (e.g. writes); empty means every method.
    methods: list[str] = Field(default_factory=list)

    @field_validator("methods")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [method.upper() for method in value]


class CheckQuota(Strict):
    """Enforce rate limits inside Check (one gRPC call per request for auth, RBAC and quota).

    Descriptors are built like Envoy's rate_limits actions, with the identity available; a
    descriptor whose value is missing (e.g. no principal on an anonymous route) is skipped.
    """

    domain: str = Field(min_length=1)
    descriptors: list[QuotaDescriptor] = Field(min_length=1)
