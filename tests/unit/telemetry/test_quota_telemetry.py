"""What the quota service reports: metrics from Envoys' usage reports, and audit lines for
each stream and each change of an assignment."""

from __future__ import annotations

import json

from prometheus_client import generate_latest

from authz_service.ratelimit.quota_assignments import Assignment, BucketUsage, Strategy, Why
from authz_service.ratelimit.quota_shares import TokenBucketShare
from authz_service.telemetry.metrics import Metrics
from authz_service.telemetry.quota_telemetry import (
    AssignmentRecord,
    QuotaTelemetry,
    StreamRecord,
)

BUCKET = (("user", "alice"),)


def share(tokens: int) -> Assignment:
    bucket = TokenBucketShare(tokens, tokens, 1)
    return Assignment(BUCKET, Strategy.TOKEN_BUCKET, 15, Why.SHARE, bucket, tokens, "per-user")


def test_usage_reports_count_what_envoy_allowed_and_denied_by_limit() -> None:
    metrics = Metrics()
    telemetry = QuotaTelemetry(metrics)
    telemetry.usage("gateway", "per-user", BucketUsage(BUCKET, 40, 7, 5))
    telemetry.usage("gateway", None, BucketUsage((("country", "fr"),), 3, 0, 5))
    telemetry.stream_opened("r#1", "ipv4:127.0.0.1:1")
    telemetry.assigned("gateway", share(10))
    telemetry.rebalanced("gateway", "r#1", share(10), None)

    text = generate_latest(metrics.registry).decode()
    labels = 'domain="gateway",limit="per-user"'
    assert f'authz_rlqs_requests_total{{{labels},outcome="allowed"}} 40.0' in text
    assert f'authz_rlqs_requests_total{{{labels},outcome="denied"}} 7.0' in text
    assert 'authz_rlqs_requests_total{domain="gateway",limit="none",outcome="allowed"} 3.0' in text
    assert "authz_rlqs_streams 1.0" in text
    assert (
        'authz_rlqs_assignments_total{domain="gateway",strategy="token_bucket",why="share"} 1.0'
        in text
    )
    assert 'authz_rlqs_rebalances_total{domain="gateway"} 1.0' in text


def test_an_assignment_change_is_an_ecs_line_with_the_bucket_and_both_shares() -> None:
    record = json.loads(AssignmentRecord(0.0, "gateway", "r#1", share(6), share(5)).line())

    assert record["event"]["action"] == "rlqs-assignment"
    assert record["event"]["category"] == ["configuration"]
    assert record["rlqs"] == {
        "domain": "gateway",
        "bucket": [["user", "alice"]],
        "envoy": "r#1",
        "strategy": "token_bucket",
        "why": "share",
        "limit": "per-user",
        "share": 6,
        "previous_share": 5,
        "token_bucket": {"max_tokens": 6, "tokens_per_fill": 6, "fill_interval_s": 1},
    }


def test_a_stream_end_says_how_many_buckets_it_held() -> None:
    record = json.loads(StreamRecord(0.0, "r#1", "ipv4:10.0.0.7:5100", "end", 3).line())

    assert record["event"]["action"] == "rlqs-stream-end"
    assert record["rlqs"] == {"envoy": "r#1", "peer": "ipv4:10.0.0.7:5100", "buckets": 3}
