"""envoy.service.rate_limit_quota.v3 messages <-> the quota service's plain values (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from envoy.service.rate_limit_quota.v3 import rlqs_pb2
from envoy.type.v3 import ratelimit_strategy_pb2

from authz_service.grpc.ratelimit_messages import BadRequest
from authz_service.ratelimit.quota_assignments import Assignment, BucketUsage, Strategy

# A bucket id is built by Envoy from the filter config (a few keys) and request values:
# anything bigger is not one of ours, and is not worth a store entry.
MAX_BUCKET_ENTRIES = 16
MAX_BUCKET_ID_BYTES = 4096
_UINT32_MAX = 2**32 - 1
_BLANKET = {
    Strategy.ALLOW_ALL: ratelimit_strategy_pb2.RateLimitStrategy.ALLOW_ALL,
    Strategy.DENY_ALL: ratelimit_strategy_pb2.RateLimitStrategy.DENY_ALL,
}


class BadReport(BadRequest):
    """A usage report without a domain: nothing in it can be looked up."""


def usages_from_proto(message: Any) -> tuple[str, list[BucketUsage], int]:
    """(domain, the usable buckets in report order, how many buckets were skipped).

    A bucket with an empty or oversized id is skipped: Envoy keeps its no-assignment
    behaviour for it, as it would for a bucket this service never answered."""
    if not message.domain:
        raise BadReport("usage report without a domain")
    usages: list[BucketUsage] = []
    skipped = 0
    for item in message.bucket_quota_usages:
        entries = tuple(item.bucket_id.bucket.items())
        size = sum(len(key) + len(value) for key, value in entries)
        if not entries or len(entries) > MAX_BUCKET_ENTRIES or size > MAX_BUCKET_ID_BYTES:
            skipped += 1
            continue
        elapsed = item.time_elapsed.seconds + item.time_elapsed.nanos / 1e9
        usages.append(
            BucketUsage(
                entries, item.num_requests_allowed, item.num_requests_denied, max(0.0, elapsed)
            )
        )
    return message.domain, usages, skipped


def response_to_proto(assignments: Sequence[Assignment]) -> Any:
    response = rlqs_pb2.RateLimitQuotaResponse()
    for sent in assignments:
        action = response.bucket_action.add()
        # Envoy finds its bucket by the id's hash: echo every entry exactly as it was sent.
        for key, value in sent.bucket_id:
            action.bucket_id.bucket[key] = value
        quota = action.quota_assignment_action
        # Whole seconds: Envoy 1.40 drops fractions (and with no TTL expires it at once).
        quota.assignment_time_to_live.seconds = sent.ttl_s
        strategy = quota.rate_limit_strategy
        if sent.strategy is Strategy.TOKEN_BUCKET and sent.token_bucket is not None:
            bucket = sent.token_bucket
            strategy.token_bucket.max_tokens = min(bucket.max_tokens, _UINT32_MAX)
            # Clamping tokens lowers the rate: never more than the share.
            strategy.token_bucket.tokens_per_fill.value = min(bucket.tokens_per_fill, _UINT32_MAX)
            strategy.token_bucket.fill_interval.seconds = bucket.fill_interval_s
        else:
            strategy.blanket_rule = _BLANKET.get(sent.strategy, _BLANKET[Strategy.DENY_ALL])
    return response
