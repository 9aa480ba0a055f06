"""Answers that count without blocking (shadow mode) and looks that count nothing (check-only
hits, explain's preview), on every store."""

from __future__ import annotations

from authz_service.ratelimit.results import Code
from authz_service.ratelimit.store import QuotaStore
from tests.integration.ratelimit.conformance.scenario_rules import (
    NOW,
    codes,
    limiter,
    one,
    request,
)


async def test_descriptor_hits_addend_zero_only_checks(store: QuotaStore) -> None:
    rl = limiter(store)
    check = request(one("client_ip", "a", hits_addend=0))
    assert await codes(rl, check, 5) == [Code.OK] * 5
    assert (await rl.should_rate_limit(check, NOW)).statuses[0].limit_remaining == 3


async def test_descriptor_shadow_mode_counts_but_never_blocks(store: QuotaStore) -> None:
    rl = limiter(store)
    req = request(one("shadowed", "x"))
    assert await codes(rl, req, 3) == [Code.OK] * 3
    assert (await rl.should_rate_limit(req, NOW)).statuses[0].limit_remaining == 0


async def test_global_shadow_mode_answers_ok_while_statuses_say_over_limit(
    store: QuotaStore,
) -> None:
    rl = limiter(store, shadow_mode=True)
    req = request(one("tier", "free"))
    await rl.should_rate_limit(req, NOW)
    result = await rl.should_rate_limit(req, NOW)
    assert result.overall_code is Code.OK
    assert result.statuses[0].code is Code.OVER_LIMIT


async def test_preview_says_the_next_request_is_refused_once_nothing_is_left(
    store: QuotaStore,
) -> None:
    rl = limiter(store)
    charged = request(one("client_ip", "9.9.9.9"))
    seen = []
    for _ in range(3):  # the limit is 3 per minute
        preview = await rl.preview_descriptors("api", [[("client_ip", "9.9.9.9")]], NOW)
        seen.append((preview.overall_code, preview.statuses[0].limit_remaining))
        await rl.should_rate_limit(charged, NOW)
    preview = await rl.preview_descriptors("api", [[("client_ip", "9.9.9.9")]], NOW)
    seen.append((preview.overall_code, preview.statuses[0].limit_remaining))
    assert seen == [(Code.OK, 3), (Code.OK, 2), (Code.OK, 1), (Code.OVER_LIMIT, 0)]


async def test_preview_charges_nothing(store: QuotaStore) -> None:
    rl = limiter(store)
    for _ in range(10):
        await rl.preview_descriptors("api", [[("client_ip", "8.8.8.8")]], NOW)
    status = (await rl.should_rate_limit(request(one("client_ip", "8.8.8.8")), NOW)).statuses[0]
    assert status.limit_remaining == 2  # only this request was charged


async def test_preview_of_an_exhausted_shadow_mode_limit_still_allows(store: QuotaStore) -> None:
    rl = limiter(store)
    await rl.should_rate_limit(request(one("shadowed", "x")), NOW)  # its limit is 1
    preview = await rl.preview_descriptors("api", [[("shadowed", "x")]], NOW)
    assert preview.overall_code is Code.OK
