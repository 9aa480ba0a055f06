"""The `rate_limit:` section of our config file. Defaults sit beside each field."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from authz_service.config.strict import Strict
from authz_service.ratelimit.schema import DomainSpec, Duration


class RedisTls(Strict):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # Only for test rigs with self-signed certificates.
    insecure_skip_verify: bool = False


class RedisSettings(Strict):
    url: str = "redis://127.0.0.1:6379/0"
    cluster: bool = False
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    # Keep the secret out of the config file: read it from a file (a Kubernetes Secret
    # mount) or an environment variable instead. At most one of the three.
    password_file: Path | None = None
    password_env: str | None = None
    tls: RedisTls | None = None
    # Prepended to every key, so several services (or versions) can share one Redis.
    key_prefix: str = "authz:rl:"
    # Bounds every ShouldRateLimit's wait on Redis; past it the call fails fast.
    timeout_ms: int = Field(default=50, ge=1)
    connect_timeout_ms: int = Field(default=200, ge=1)
    pool_size: int = Field(default=64, ge=1)

    @model_validator(mode="after")
    def _tls_needs_rediss(self) -> RedisSettings:
        if self.tls is not None and not self.url.startswith("rediss://"):
            raise ValueError("tls is set: use a rediss:// URL (redis:// would not encrypt)")
        return self

    @model_validator(mode="after")
    def _one_password_source(self) -> RedisSettings:
        given = [v for v in (self.password, self.password_file, self.password_env) if v is not None]
        if len(given) > 1:
            raise ValueError("give at most one of password, password_file, password_env")
        return self

    def resolved_password(self) -> str | None:
        """The password from whichever source is configured (read when connecting)."""
        if self.password_file is not None:
            return self.password_file.read_text().strip()
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ValueError(f"environment variable {self.password_env} is not set")
            return value
        return self.password

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("use a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("key_prefix")
    @classmethod
    def _no_hash_tag(cls, value: str) -> str:
        # Braces would become the Redis Cluster hash tag and put every counter in one slot.
        if "{" in value or "}" in value:
            raise ValueError("the key prefix must not contain '{' or '}'")
        return value


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
