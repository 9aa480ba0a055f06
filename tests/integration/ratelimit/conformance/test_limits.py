"""The limits every store enforces through the RateLimiter: each algorithm, several limits on
one descriptor, hits_addend, charge_rejected off, expiry, reset and concurrent callers."""

from __future__ import annotations

import asyncio

import pytest

from authz_service.ratelimit.memory_store import MemoryStore
from authz_service.ratelimit.results import Code, CurrentLimit, DescriptorStatus
from authz_service.ratelimit.store import QuotaStore
from tests.integration.ratelimit.conformance.scenario_rules import (
    MINUTE,
    NOW,
    codes,
    limiter,
    one,
    request,
)


async def test_over_the_limit_answers_over_limit_with_statuses(store: QuotaStore) -> None:
    rl = limiter(store)
    req = request(one("client_ip", "1.2.3.4"))
    assert await codes(rl, req, 4) == [Code.OK] * 3 + [Code.OVER_LIMIT]
    result = await rl.should_rate_limit(req, NOW)
    assert result.statuses == (
        DescriptorStatus(Code.OVER_LIMIT, CurrentLimit(3, "minute"), 0, 20.0),
    )


async def test_ok_status_carries_remaining_and_time_until_reset(store: QuotaStore) -> None:
    result = await limiter(store).should_rate_limit(request(one("client_ip", "1.2.3.4")), NOW)
    assert result.statuses == (DescriptorStatus(Code.OK, CurrentLimit(3, "minute"), 2, 20.0),)


async def test_sliding_window_counts_the_previous_window_by_its_remaining_weight(
    store: QuotaStore,
) -> None:
    rl = limiter(store)
    req = request(one("sliding", "s"))  # 4 per minute
    assert await codes(rl, req, 5, at=MINUTE) == [Code.OK] * 4 + [Code.OVER_LIMIT]
    # Half way through the next minute, the previous one (5 charged) still weighs 2.5.
    half_way = [await rl.should_rate_limit(req, MINUTE + 90) for _ in range(2)]
    assert [r.overall_code for r in half_way] == [Code.OK, Code.OVER_LIMIT]
    # The earliest retry: when the previous minute's weight has decayed enough for one hit.
    assert half_way[1].statuses[0].duration_until_reset == pytest.approx(18.0)
    assert await codes(rl, req, 1, at=MINUTE + 109) == [Code.OK]


@pytest.mark.parametrize("algorithm", ["bucket", "gcra"])
async def test_token_bucket_allows_a_burst_then_one_request_per_refill(
    store: QuotaStore, algorithm: str
) -> None:
    rl = limiter(store)
    req = request(one(algorithm, "b"))  # 3 per minute: a burst of 3, a token every 20 s
    burst = [await rl.should_rate_limit(req, MINUTE) for _ in range(4)]
    assert [r.overall_code for r in burst] == [Code.OK] * 3 + [Code.OVER_LIMIT]
    assert [r.statuses[0].limit_remaining for r in burst] == [2, 1, 0, 0]
    assert burst[3].statuses[0].duration_until_reset == pytest.approx(20.0)
    assert await codes(rl, req, 2, at=MINUTE + 20) == [Code.OK, Code.OVER_LIMIT]


async def test_several_limits_on_one_descriptor_all_apply(store: QuotaStore) -> None:
    rl = limiter(store)
    req = request(one("user", "alice"))
    per_second = [await rl.should_rate_limit(req, NOW + t) for t in (0, 0, 0)]
    assert [r.overall_code for r in per_second] == [Code.OK, Code.OK, Code.OVER_LIMIT]
    assert per_second[2].statuses[0].current_limit == CurrentLimit(2, "second", "user_per_second")
    later = [await rl.should_rate_limit(req, NOW + t) for t in (1, 1, 2, 2)]
    # The per-second limit charged the rejected third hit, so the day has 2 left at t=1.
    assert [r.overall_code for r in later] == [Code.OK, Code.OK, Code.OVER_LIMIT, Code.OVER_LIMIT]
    assert later[-1].statuses[0].current_limit == CurrentLimit(5, "day", "user_per_day")


async def test_request_hits_addend_charges_that_many(store: QuotaStore) -> None:
    result = await limiter(store).should_rate_limit(request(one("client_ip", "a"), hits=3), NOW)
    assert (result.overall_code, result.statuses[0].limit_remaining) == (Code.OK, 0)


async def test_descriptor_hits_addend_overrides_the_request_one(store: QuotaStore) -> None:
    req = request(one("client_ip", "a", hits_addend=2), one("client_ip", "b"), hits=3)
    result = await limiter(store).should_rate_limit(req, NOW)
    assert [s.limit_remaining for s in result.statuses] == [1, 0]


async def test_not_charging_rejected_requests_keeps_the_quota_for_smaller_ones(
    store: QuotaStore,
) -> None:
    rl = limiter(store)
    big = request(one("upload", "u", hits_addend=5))
    small = request(one("upload", "u", hits_addend=1))
    assert await codes(rl, big, 1) == [Code.OVER_LIMIT]
    assert await codes(rl, small, 4) == [Code.OK] * 3 + [Code.OVER_LIMIT]


async def test_window_expiry_restores_the_quota(store: QuotaStore) -> None:
    rl = limiter(store)
    req = request(one("tier", "free"))
    assert (await rl.should_rate_limit(req, NOW)).overall_code is Code.OK
    assert (await rl.should_rate_limit(req, NOW + 19.9)).overall_code is Code.OVER_LIMIT
    assert (await rl.should_rate_limit(req, NOW + 20.0)).overall_code is Code.OK


async def test_reset_forgets_every_counter_of_the_descriptor(store: QuotaStore) -> None:
    rl = limiter(store)
    req = request(one("user", "carol"))
    await codes(rl, req, 3)
    await rl.reset("api", [("user", "carol")], NOW)
    assert (await rl.should_rate_limit(req, NOW)).statuses[0].limit_remaining == 1


@pytest.mark.parametrize("algorithm", ["fixed_window", "sliding_window", "token_bucket"])
async def test_concurrent_callers_never_over_admit(store: QuotaStore, algorithm: str) -> None:
    descriptors = [[(f"burst_{algorithm}", "hot")]]  # 25 per minute
    reference = limiter(MemoryStore())
    one_after_another = [
        await reference.check_descriptors("api", descriptors, now=MINUTE) for _ in range(100)
    ]
    rl = limiter(store)
    concurrent = await asyncio.gather(
        *(rl.check_descriptors("api", descriptors, now=MINUTE) for _ in range(100))
    )
    admitted = [r.overall_code for r in concurrent].count(Code.OK)
    # Atomic: exactly as many as the same calls one after another, and that is the limit.
    assert admitted == [r.overall_code for r in one_after_another].count(Code.OK)
    assert admitted == 25
