"""From a bucket id Envoy reported to the limit that governs it, and from a share to the
assignment Envoy enforces.

A bucket id is a map: Envoy sends its entries in no particular order, while limits are
looked up entry by entry in descriptor order (`tier` then `user`). The order is the one of
the `quota_service.descriptors` definition with the same keys; without one, keys sorted.
The bucket is limited by the same `rate_limit` domains as ShouldRateLimit and Check; of
several limits on one descriptor (per second AND per day), a token bucket can enforce one:
the one with the lowest rate (`authz-service check-rlqs` warns about the others).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from authz_service.ratelimit.counters import counter_base
from authz_service.ratelimit.quota_assignments import Assignment, Entry, Strategy, Why
from authz_service.ratelimit.quota_shares import token_bucket
from authz_service.ratelimit.rules import Limit, RateLimitRules
from authz_service.schema import QuotaDescriptor

KeyOrders = dict[frozenset[str], tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class ResolvedBucket:
    bucket_id: tuple[Entry, ...]  # as reported
    entries: tuple[Entry, ...]  # in descriptor order
    limit: Limit | None  # the limit shared out (None: nothing to share)
    why: Why  # SHARE, or why the bucket is not shared out
    store_key: str  # where its usage is kept ("" when not counted)

    @property
    def counted(self) -> bool:
        """Usage is kept (shares computed) for limited buckets, shadowed ones included."""
        return bool(self.store_key)


def descriptor_orders(descriptors: Iterable[QuotaDescriptor]) -> KeyOrders:
    """Key set -> key order, from the definitions (the first one wins)."""
    orders: KeyOrders = {}
    for descriptor in descriptors:
        keys = tuple(entry.key for entry in descriptor.entries)
        orders.setdefault(frozenset(keys), keys)
    return orders


def ordered(bucket_id: Sequence[Entry], orders: KeyOrders) -> tuple[Entry, ...]:
    values = dict(bucket_id)
    keys = orders.get(frozenset(values)) or tuple(sorted(values))
    return tuple((key, values[key]) for key in keys)


def tightest(limits: Sequence[Limit]) -> Limit:
    """The limit with the lowest long-run rate (requests per second)."""
    return min(limits, key=lambda limit: (limit.requests_per_unit / limit.window_s, limit.index))


def resolve(
    rules: RateLimitRules,
    domain: str,
    bucket_id: tuple[Entry, ...],
    orders: KeyOrders,
    shadow_mode: bool = False,
) -> ResolvedBucket:
    entries = ordered(bucket_id, orders)
    found = rules.match(domain, entries)
    if found is None or not found.limits:
        return ResolvedBucket(bucket_id, entries, None, Why.NO_LIMIT, "")
    if any(limit.unlimited for limit in found.limits):
        return ResolvedBucket(bucket_id, entries, None, Why.UNLIMITED, "")
    limit = tightest(found.limits)
    key = f"{counter_base(domain, found.counter_entries)}|{limit.counter_tag}"
    if limit.requests_per_unit <= 0:
        return ResolvedBucket(bucket_id, entries, limit, Why.ZERO_LIMIT, "")
    why = Why.SHADOW if shadow_mode or limit.shadow_mode else Why.SHARE
    return ResolvedBucket(bucket_id, entries, limit, why, key)


def assignment(bucket: ResolvedBucket, share: float | Fraction, ttl_s: int) -> Assignment:
    """What Envoy enforces for `bucket` given this Envoy's `share` of its limit."""
    limit = bucket.limit
    name = limit.name if limit is not None else ""
    if bucket.why is Why.ZERO_LIMIT:
        return Assignment(bucket.bucket_id, Strategy.DENY_ALL, ttl_s, bucket.why, limit_name=name)
    if limit is None or bucket.why is not Why.SHARE:
        return Assignment(bucket.bucket_id, Strategy.ALLOW_ALL, ttl_s, bucket.why, limit_name=name)
    tokens = token_bucket(share, limit.window_s)
    if tokens is None:  # no share at all (cannot happen for an Envoy that reported)
        return Assignment(bucket.bucket_id, Strategy.DENY_ALL, ttl_s, bucket.why, limit_name=name)
    return Assignment(
        bucket.bucket_id, Strategy.TOKEN_BUCKET, ttl_s, Why.SHARE, tokens, float(share), name
    )


def blanket(bucket: ResolvedBucket, strategy: Strategy, ttl_s: int) -> Assignment:
    """The store does not answer and `store_unavailable` says allow_all or deny_all."""
    name = bucket.limit.name if bucket.limit is not None else ""
    return Assignment(bucket.bucket_id, strategy, ttl_s, Why.STORE_UNAVAILABLE, limit_name=name)
