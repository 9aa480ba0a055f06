"""One-time tokens (jti replay protection) on the in-memory quota store, with a fake clock.

First use, replay, expiry and concurrent uses run on every quota store in
tests/integration/ratelimit/conformance/test_auth_records.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from pydantic import ValidationError

from authz_service.authn.replay import ReplayGuard, ReplayVerdict, replay_key
from authz_service.decisions import AuthMethod, Identity
from authz_service.ratelimit.algorithms import Verdict
from authz_service.ratelimit.memory_store import MemoryStore
from authz_service.ratelimit.store import Hit, StoreUnavailable
from authz_service.schema import ReplayProtection
from tests.support.idp import FakeClock

ISSUER = "https://idp.example"
OTHER_ISSUER = "https://other.example"
NOW = 1_700_000_000.0


@dataclass(frozen=True)
class Provider:
    issuer: str
    leeway_s: float = 30.0
    replay_protection: ReplayProtection = field(
        default_factory=lambda: ReplayProtection(enabled=True)
    )


class DownStore:
    async def apply(self, hits: list[Hit], now: float) -> list[object]:
        raise StoreUnavailable("redis: connection refused")

    async def reset(self, hits: list[Hit], now: float) -> None:
        raise StoreUnavailable("redis: connection refused")

    async def close(self) -> None:
        pass

    def stats(self) -> dict[str, float]:
        return {}


class CountingStore(MemoryStore):
    """The memory store, counting the calls that reach it."""

    def __init__(self) -> None:
        super().__init__("authz:rl:")
        self.calls = 0

    async def apply(self, hits: Sequence[Hit], now: float) -> list[Verdict]:
        self.calls += 1
        return await super().apply(hits, now)


def token(jti: str = "t-1", *, issuer: str = ISSUER, lifetime_s: float = 300) -> Identity:
    return Identity(
        principal="alice",
        method=AuthMethod.JWT,
        issuer=issuer,
        token_id=jti,
        expires_at=NOW + lifetime_s,
    )


def guard(*providers: Provider, store: object | None = None) -> tuple[ReplayGuard, FakeClock]:
    clock = FakeClock(NOW)
    built = ReplayGuard.for_providers(
        providers or (Provider(ISSUER),),
        store if store is not None else MemoryStore("authz:rl:"),  # type: ignore[arg-type]
        clock,
    )
    assert built is not None
    return built, clock


async def test_the_same_jti_from_another_issuer_is_another_token() -> None:
    replay, _ = guard(Provider(ISSUER), Provider(OTHER_ISSUER))
    assert await replay.check(token("shared")) is ReplayVerdict.FIRST_USE
    assert await replay.check(token("shared", issuer=OTHER_ISSUER)) is ReplayVerdict.FIRST_USE


async def test_providers_that_did_not_opt_in_are_not_tracked() -> None:
    off = Provider(OTHER_ISSUER, replay_protection=ReplayProtection(enabled=False))
    store = CountingStore()
    replay, _ = guard(Provider(ISSUER), off, store=store)
    assert await replay.check(token(issuer=OTHER_ISSUER)) is ReplayVerdict.NOT_TRACKED
    assert await replay.check(token(issuer=OTHER_ISSUER)) is ReplayVerdict.NOT_TRACKED
    api_key = Identity(principal="svc", method=AuthMethod.API_KEY)
    assert await replay.check(api_key) is ReplayVerdict.NOT_TRACKED
    assert store.calls == 0  # nothing recorded for them


async def test_peek_says_what_check_would_answer_and_records_nothing() -> None:
    replay, _ = guard()
    assert await replay.peek(token()) is ReplayVerdict.FIRST_USE
    assert await replay.peek(token()) is ReplayVerdict.FIRST_USE  # looking used nothing
    assert await replay.check(token()) is ReplayVerdict.FIRST_USE
    assert await replay.peek(token()) is ReplayVerdict.REPLAYED
    assert await replay.check(token()) is ReplayVerdict.REPLAYED


async def test_peek_near_expiry_still_sees_the_use() -> None:
    replay, clock = guard(Provider(ISSUER, leeway_s=0))
    short = token(lifetime_s=0.5)  # the record's period is clamped to one second
    assert await replay.check(short) is ReplayVerdict.FIRST_USE
    clock.advance(0.4)
    assert await replay.peek(short) is ReplayVerdict.REPLAYED


async def test_peek_with_the_store_down_follows_the_failure_mode() -> None:
    replay, _ = guard(store=DownStore())
    assert await replay.peek(token()) is ReplayVerdict.STORE_UNAVAILABLE
    lenient = ReplayProtection(enabled=True, failure_mode="allow")
    allowing, _ = guard(Provider(ISSUER, replay_protection=lenient), store=DownStore())
    assert await allowing.peek(token()) is ReplayVerdict.FIRST_USE


def test_no_guard_is_built_when_no_provider_opts_in() -> None:
    off = Provider(ISSUER, replay_protection=ReplayProtection())
    assert ReplayGuard.for_providers([off], MemoryStore()) is None


async def test_token_without_jti_is_refused_when_jti_is_required() -> None:
    replay, _ = guard()
    assert await replay.check(token("")) is ReplayVerdict.MISSING_JTI
    assert not ReplayVerdict.MISSING_JTI.allowed


async def test_token_without_jti_passes_when_jti_is_optional() -> None:
    lenient = ReplayProtection(enabled=True, require_jti=False)
    replay, _ = guard(Provider(ISSUER, replay_protection=lenient))
    assert await replay.check(token("")) is ReplayVerdict.FIRST_USE


async def test_store_down_fails_closed_by_default() -> None:
    replay, _ = guard(store=DownStore())
    verdict = await replay.check(token())
    assert verdict is ReplayVerdict.STORE_UNAVAILABLE
    assert not verdict.allowed


async def test_store_down_with_failure_mode_allow_accepts_the_token() -> None:
    lenient = ReplayProtection(enabled=True, failure_mode="allow")
    replay, _ = guard(Provider(ISSUER, replay_protection=lenient), store=DownStore())
    assert await replay.check(token()) is ReplayVerdict.FIRST_USE


async def test_already_expired_token_is_still_recorded_for_a_moment() -> None:
    replay, _ = guard(Provider(ISSUER, leeway_s=0))
    stale = token(lifetime_s=-10)  # a clock-skewed verifier might still accept it
    assert await replay.check(stale) is ReplayVerdict.FIRST_USE
    assert await replay.check(stale) is ReplayVerdict.REPLAYED


def test_store_key_is_a_bounded_hash_not_the_jti() -> None:
    key = replay_key(ISSUER, "x" * 10_000)
    assert key.startswith("jti:")
    assert len(key) == len("jti:") + 40
    assert "x" not in key.removeprefix("jti:")
    assert replay_key(ISSUER, "a") != replay_key(OTHER_ISSUER, "a")


def test_settings_reject_unknown_keys_and_bad_failure_modes() -> None:
    with pytest.raises(ValidationError):
        ReplayProtection.model_validate({"enabled": True, "ttl": 5})
    with pytest.raises(ValidationError):
        ReplayProtection.model_validate({"enabled": True, "failure_mode": "deny"})
    assert ReplayProtection.model_validate({}) == ReplayProtection(
        enabled=False, require_jti=True, failure_mode="unavailable"
    )
