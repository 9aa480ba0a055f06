"""The quota service's plain values: what an Envoy reports for a bucket, and what it is told
to enforce. No protobuf: grpc/quota_messages.py translates."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from authz_service.ratelimit.quota_shares import TokenBucketShare

Entry = tuple[str, str]


@dataclass(frozen=True, slots=True)
class BucketUsage:
    """One bucket of a usage report: its id as Envoy built it, and what Envoy counted since
    its last report of the bucket (whole seconds; 0 in the bucket's first report)."""

    bucket_id: tuple[Entry, ...]
    allowed: int
    denied: int
    elapsed_s: float


class Strategy(enum.StrEnum):
    TOKEN_BUCKET = "token_bucket"
    ALLOW_ALL = "allow_all"
    DENY_ALL = "deny_all"


class Why(enum.StrEnum):
    """Why a bucket got its assignment: a metric label and an audit field."""

    SHARE = "share"  # its share of a limit
    NO_LIMIT = "no_limit"  # no limit of the domain matches the bucket: never limited
    UNLIMITED = "unlimited"  # the limit says `unlimited`
    SHADOW = "shadow"  # shadow mode: counted, never enforced
    ZERO_LIMIT = "zero_limit"  # requests_per_unit 0
    STORE_UNAVAILABLE = "store_unavailable"  # store_unavailable: allow_all | deny_all


@dataclass(frozen=True, slots=True)
class Assignment:
    """What one Envoy enforces for one bucket until `ttl_s` passes without a new one."""

    bucket_id: tuple[Entry, ...]  # echoed exactly as Envoy sent it
    strategy: Strategy
    ttl_s: int
    why: Why
    token_bucket: TokenBucketShare | None = None
    share: float = 0.0  # requests per window (token buckets)
    limit_name: str = ""

    def same_enforcement(self, other: Assignment | None) -> bool:
        """Whether Envoy would enforce the same thing (a refresh, not a rebalance)."""
        return (
            other is not None
            and other.strategy is self.strategy
            and other.token_bucket == self.token_bucket
        )
