"""How we reach a Redis (standalone or cluster): the `redis:` sections of `rate_limit:` and of
`revocation:`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from authz_service.schema.base import Strict


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
    # The quota store's counters: `pipelined` sends every command over one connection per
    # Redis (per master of a cluster, routed by slot, MOVED/ASK followed), concurrent ones in
    # one write (~14 us of CPU per command against ~84 us through redis-py's pool:
    # benchmarks/redis_clients.py); `pool` uses redis-py's pools of `pool_size` connections
    # (per node of a cluster). Revocation and RLQS usage always use redis-py.
    connection: Literal["pipelined", "pool"] = "pipelined"
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
