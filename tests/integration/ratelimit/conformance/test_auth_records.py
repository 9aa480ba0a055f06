"""What authentication keeps in the quota store: brute-force lockout counters and one-time
token (jti) records."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from authz_service.authn.replay import ReplayGuard, ReplayVerdict
from authz_service.decisions import AuthMethod, Identity
from authz_service.ratelimit.counters import lockout_hit
from authz_service.ratelimit.store import QuotaStore
from authz_service.schema import BruteForceSettings, ReplayProtection
from tests.integration.ratelimit.conformance.scenario_rules import NOW, limiter
from tests.support.idp import FakeClock

BRUTE = BruteForceSettings(enabled=True, max_failures=3, window=60.0, lockout=300.0)
ISSUER = "https://idp.example"


async def test_repeated_auth_failures_lock_the_client_ip_out(store: QuotaStore) -> None:
    rl = limiter(store, brute_force=BRUTE)
    states = [await rl.record_auth_failure("198.51.100.7", NOW) for _ in range(3)]
    assert [s.locked for s in states] == [False, False, True]
    assert [s.failures_left for s in states[:2]] == [2, 1]
    assert states[-1].retry_after == 300.0
    assert (await rl.lockout_state("198.51.100.7", NOW + 299)).locked
    assert not (await rl.lockout_state("198.51.100.7", NOW + 300)).locked
    assert not (await rl.lockout_state("198.51.100.8", NOW)).locked


async def test_resetting_the_lockout_counters_lets_the_client_in_again(store: QuotaStore) -> None:
    rl = limiter(store, brute_force=BRUTE)
    for _ in range(3):
        await rl.record_auth_failure("198.51.100.7", NOW)
    await store.reset([lockout_hit("198.51.100.7", BRUTE, 0)], NOW)
    assert not (await rl.lockout_state("198.51.100.7", NOW)).locked


@dataclass(frozen=True)
class Provider:
    issuer: str = ISSUER
    leeway_s: float = 30.0
    replay_protection: ReplayProtection = field(
        default_factory=lambda: ReplayProtection(enabled=True)
    )


def replay_guard(store: QuotaStore, leeway_s: float = 30.0) -> tuple[ReplayGuard, FakeClock]:
    clock = FakeClock(NOW)
    guard = ReplayGuard.for_providers([Provider(leeway_s=leeway_s)], store, clock)
    assert guard is not None
    return guard, clock


def token(jti: str = "t-1", lifetime_s: float = 300) -> Identity:
    return Identity(
        principal="alice",
        method=AuthMethod.JWT,
        issuer=ISSUER,
        token_id=jti,
        expires_at=NOW + lifetime_s,
    )


async def test_first_use_of_a_jti_passes_and_the_second_is_a_replay(store: QuotaStore) -> None:
    replay, _ = replay_guard(store)
    assert await replay.check(token()) is ReplayVerdict.FIRST_USE
    assert await replay.check(token()) is ReplayVerdict.REPLAYED
    assert await replay.check(token("t-2")) is ReplayVerdict.FIRST_USE


async def test_replay_is_refused_until_expiry_plus_leeway_then_the_record_is_gone(
    store: QuotaStore,
) -> None:
    replay, clock = replay_guard(store, leeway_s=30)
    assert await replay.check(token(lifetime_s=300)) is ReplayVerdict.FIRST_USE
    clock.advance(329)  # exp + leeway not yet reached: the token could still verify
    assert await replay.check(token(lifetime_s=300)) is ReplayVerdict.REPLAYED
    clock.advance(2)  # past exp + leeway: the verifier refuses the token by itself now
    assert await replay.check(token(lifetime_s=300)) is ReplayVerdict.FIRST_USE


async def test_concurrent_uses_of_one_jti_let_exactly_one_through(store: QuotaStore) -> None:
    replay, _ = replay_guard(store)
    verdicts = await asyncio.gather(*(replay.check(token("race")) for _ in range(50)))
    assert verdicts.count(ReplayVerdict.FIRST_USE) == 1
    assert verdicts.count(ReplayVerdict.REPLAYED) == 49
