"""RateLimiter decisions on the in-memory store, with the clock passed in.

What only the limiter decides (matching, replaces, overrides, failure modes, lockout subjects,
outage reporting). The limits every store must enforce the same way (each algorithm, shadow
mode, preview, expiry, reset, lockout counters) run on every store in
tests/integration/ratelimit/conformance/."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from authz_service.ratelimit.algorithms import Verdict
from authz_service.ratelimit.counters import lockout_hit
from authz_service.ratelimit.limiter import RateLimiter
from authz_service.ratelimit.memory_store import MemoryStore
from authz_service.ratelimit.outages import StoreOutages
from authz_service.ratelimit.response import rate_limit_headers
from authz_service.ratelimit.results import (
    UNLIMITED_REMAINING,
    Code,
    CurrentLimit,
    Descriptor,
    DescriptorStatus,
    LimitOverride,
    RateLimitRequestData,
)
from authz_service.ratelimit.rules import RateLimitRules, compile_rules, parse_domain_document
from authz_service.ratelimit.store import Hit, StoreUnavailable
from authz_service.schema import BruteForceSettings

CONFIG = """
domain: api
descriptors:
  - key: client_ip
    rate_limit: {unit: minute, requests_per_unit: 3}
  - key: user
    rate_limits:
      - {unit: second, requests_per_unit: 2, name: user_per_second}
      - {unit: day, requests_per_unit: 5, name: user_per_day}
  - key: shadowed
    shadow_mode: true
    rate_limit: {unit: minute, requests_per_unit: 1}
  - key: tier
    value: gold
    rate_limit: {unit: minute, requests_per_unit: 100, name: gold}
  - key: tier
    value: free
    rate_limit: {unit: minute, requests_per_unit: 1, name: free}
  - key: path
    rate_limit: {unit: minute, requests_per_unit: 10, name: per_path}
  - key: vip
    rate_limit:
      unlimited: true
      replaces: [{name: per_path}]
  - key: upload
    rate_limit: {unit: minute, requests_per_unit: 3, charge_rejected: false}
"""

NOW = 1_700_000_020.0  # 40 s into a minute


def make_config() -> RateLimitRules:
    return compile_rules([parse_domain_document(CONFIG, "api.yaml")])


def limiter(**options: object) -> RateLimiter:
    return RateLimiter(make_config(), MemoryStore(), **options)  # type: ignore[arg-type]


def request(*descriptors: Descriptor, hits: int = 0) -> RateLimitRequestData:
    return RateLimitRequestData("api", descriptors, hits)


def one(key: str, value: str, **kwargs: object) -> Descriptor:
    return Descriptor(((key, value),), **kwargs)  # type: ignore[arg-type]


async def codes(rl: RateLimiter, req: RateLimitRequestData, times: int) -> list[Code]:
    return [(await rl.should_rate_limit(req, NOW)).overall_code for _ in range(times)]


async def locked_out(rl: RateLimiter, client_ip: str, now: float = NOW) -> bool:
    return (await rl.lockout_state(client_ip, now)).locked


async def test_any_over_limit_descriptor_makes_the_answer_over_limit() -> None:
    rl = limiter()
    req = request(one("path", "/a"), one("tier", "free"))
    first, second = [await rl.should_rate_limit(req, NOW) for _ in range(2)]
    assert first.overall_code is Code.OK
    assert second.overall_code is Code.OVER_LIMIT
    assert [s.code for s in second.statuses] == [Code.OK, Code.OVER_LIMIT]


async def test_unmatched_descriptor_is_ok_without_a_limit() -> None:
    result = await limiter().should_rate_limit(request(one("nothing", "x")), NOW)
    assert result.statuses == (DescriptorStatus(Code.OK),)


async def test_unlimited_descriptor_reports_max_remaining_and_replaces_named_limits() -> None:
    result = await limiter().should_rate_limit(request(one("path", "/a"), one("vip", "yes")), NOW)
    # per_path is replaced: no limit applied to the path descriptor at all.
    assert result.statuses == (
        DescriptorStatus(Code.OK),
        DescriptorStatus(Code.OK, None, UNLIMITED_REMAINING),
    )


async def test_tier_value_selects_the_tier_limit() -> None:
    rl = limiter()
    gold = await codes(rl, request(one("tier", "gold")), 5)
    free = await codes(rl, request(one("tier", "free")), 2)
    assert gold == [Code.OK] * 5
    assert free == [Code.OK, Code.OVER_LIMIT]


async def test_limit_override_from_the_request_replaces_the_config_limit() -> None:
    override = LimitOverride(requests_per_unit=1, unit="hour")
    rl = limiter()
    req = request(one("client_ip", "a", limit=override))
    results = [await rl.should_rate_limit(req, NOW) for _ in range(2)]
    assert [r.overall_code for r in results] == [Code.OK, Code.OVER_LIMIT]
    assert results[1].statuses[0].current_limit == CurrentLimit(1, "hour")


async def test_limit_override_for_an_unknown_domain_is_ignored() -> None:
    req = RateLimitRequestData("other", (one("x", "y", limit=LimitOverride(0, "second")),))
    assert (await limiter().should_rate_limit(req, NOW)).overall_code is Code.OK


async def test_check_descriptors_enforces_the_domain_for_ext_authz() -> None:
    rl = limiter()
    results = [
        await rl.check_descriptors("api", [[("tier", "free")], [("user", "bob")]], now=NOW)
        for _ in range(2)
    ]
    assert [r.overall_code for r in results] == [Code.OK, Code.OVER_LIMIT]


async def test_a_limiter_reloaded_on_the_same_store_keeps_the_counters() -> None:
    store = MemoryStore()
    req = request(one("tier", "free"))
    await RateLimiter(make_config(), store).should_rate_limit(req, NOW)
    reloaded = RateLimiter(make_config(), store)  # what a config reload builds
    assert (await reloaded.should_rate_limit(req, NOW)).overall_code is Code.OVER_LIMIT


class FailingStore:
    async def apply(self, hits: Sequence[Hit], now: float) -> list[Verdict]:
        raise StoreUnavailable("down")

    async def reset(self, hits: Sequence[Hit], now: float) -> None:
        raise StoreUnavailable("down")

    async def close(self) -> None:
        return None

    def stats(self) -> dict[str, float]:
        return {}


@pytest.mark.parametrize(("mode", "code"), [("allow", Code.OK), ("deny", Code.OVER_LIMIT)])
async def test_store_failure_answers_the_configured_failure_mode(mode: str, code: Code) -> None:
    rl = RateLimiter(make_config(), FailingStore(), failure_mode=mode)  # type: ignore[arg-type]
    result = await rl.should_rate_limit(request(one("client_ip", "a")), NOW)
    assert (result.overall_code, result.degraded) == (code, True)


async def test_store_failure_raises_when_failure_mode_is_unavailable() -> None:
    rl = RateLimiter(make_config(), FailingStore())
    with pytest.raises(StoreUnavailable):
        await rl.should_rate_limit(request(one("client_ip", "a")), NOW)


async def test_request_with_no_limited_descriptor_never_reaches_the_store() -> None:
    rl = RateLimiter(make_config(), FailingStore())
    result = await rl.should_rate_limit(request(one("nothing", "x")), NOW)
    assert result.overall_code is Code.OK


BRUTE = BruteForceSettings(enabled=True, max_failures=3, window=60.0, lockout=300.0)


async def test_brute_force_disabled_never_locks_out() -> None:
    rl = limiter()
    for _ in range(20):
        await rl.record_auth_failure("198.51.100.7", NOW)
    assert not await locked_out(rl, "198.51.100.7")


async def test_brute_force_fails_open_when_the_store_is_down() -> None:
    rl = RateLimiter(make_config(), FailingStore(), brute_force=BRUTE)
    assert not await locked_out(rl, "198.51.100.7")


async def test_a_window_of_several_units_is_reported_with_its_real_length() -> None:
    text = """
domain: api
descriptors:
  - key: report
    rate_limit: {window: 5m, requests_per_unit: 3}
"""
    rl = RateLimiter(compile_rules([parse_domain_document(text, "w.yaml")]), MemoryStore())

    result = await rl.should_rate_limit(request(one("report", "r")), NOW)

    limit = result.statuses[0].current_limit
    assert limit == CurrentLimit(3, "minute", window_s=300.0)  # Envoy's API says MINUTE...
    # ...but the headers Check writes itself say 3 per 300 s, not 3 per minute.
    assert rate_limit_headers(result)["x-ratelimit-limit"] == "3, 3;w=300"


async def test_failures_across_one_ipv6_64_lock_out_the_whole_64() -> None:
    rl = limiter(brute_force=BRUTE)
    for host in range(1, 4):  # a new address of the same /64 for every guess
        await rl.record_auth_failure(f"2001:db8:1:2::{host}", NOW)
    assert await locked_out(rl, "2001:db8:1:2::99")
    assert (await rl.lockout_state("2001:db8:1:2:abcd::1", NOW)).locked
    assert not await locked_out(rl, "2001:db8:1:3::1")


async def test_ipv4_mapped_addresses_count_with_their_ipv4_address() -> None:
    store = MemoryStore()
    rl = RateLimiter(make_config(), store, brute_force=BRUTE)
    await rl.record_auth_failure("198.51.100.7", NOW)
    await rl.record_auth_failure("::ffff:198.51.100.7", NOW)
    await rl.record_auth_failure("::ffff:c633:6407", NOW)
    assert await locked_out(rl, "198.51.100.7")
    # Either spelling names the same counters.
    await store.reset([lockout_hit("::ffff:198.51.100.7", BRUTE, 0)], NOW)
    assert not await locked_out(rl, "198.51.100.7")


async def test_the_ipv6_prefix_length_is_configurable() -> None:
    rl = limiter(brute_force=BRUTE.model_copy(update={"ipv6_prefix_length": 128}))
    for host in range(1, 4):
        await rl.record_auth_failure(f"2001:db8:1:2::{host}", NOW)
    assert not await locked_out(rl, "2001:db8:1:2::1")


# -- the store down: log the change of state, count the rest ------------------------------


class SwitchableStore(MemoryStore):
    """A memory store that can be taken down and brought back."""

    down = False

    async def apply(self, hits: Sequence[Hit], now: float) -> list[Verdict]:
        if self.down:
            raise StoreUnavailable("connection refused")
        return await super().apply(hits, now)


def store_log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("authz_service")]


async def test_a_store_outage_is_logged_when_it_starts_and_ends_not_per_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, outages = SwitchableStore(), StoreOutages()
    rl = RateLimiter(make_config(), store, brute_force=BRUTE, outages=outages)
    caplog.set_level("INFO", logger="authz_service")

    store.down = True
    for _ in range(500):
        assert not (await rl.lockout_state("198.51.100.7", NOW)).locked
    down_lines = store_log_lines(caplog)
    store.down = False
    for _ in range(3):
        await rl.lockout_state("198.51.100.7", NOW)
    lines = store_log_lines(caplog)

    assert len(down_lines) == 1 and "unavailable" in down_lines[0], down_lines
    assert "not enforced" in down_lines[0]
    assert len(lines) == 2 and "again" in lines[1] and "500" in lines[1], lines
    assert outages.counts()["lockout"] == 500


async def test_degraded_rate_limit_answers_are_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, outages = SwitchableStore(), StoreOutages()
    store.down = True
    rl = RateLimiter(make_config(), store, failure_mode="allow", outages=outages)
    caplog.set_level("INFO", logger="authz_service")
    for _ in range(50):
        result = await rl.should_rate_limit(request(one("client_ip", "a")), NOW)
        assert result.degraded
    assert len(store_log_lines(caplog)) == 1
    assert outages.counts()["rate_limit"] == 50
    # A reloaded limiter (same store and outages, as compile_config builds it) keeps the
    # state: no second "unavailable" line.
    reloaded = RateLimiter(make_config(), store, failure_mode="allow", outages=outages)
    await reloaded.should_rate_limit(request(one("client_ip", "a")), NOW)
    assert len(store_log_lines(caplog)) == 1
    assert outages.counts()["rate_limit"] == 51
