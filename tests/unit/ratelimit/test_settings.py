"""The `rate_limit:` settings section."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from authz_service.schema import RateLimitSettings


def test_defaults_fail_fast_on_an_in_memory_store() -> None:
    settings = RateLimitSettings()
    assert (settings.store, settings.failure_mode, settings.redis.timeout_ms) == (
        "memory",
        "unavailable",
        50,
    )


def test_durations_accept_units() -> None:
    settings = RateLimitSettings.model_validate(
        {"brute_force": {"window": "1m", "lockout": "5m"}, "circuit_breaker": {"open_for": "2s"}}
    )
    assert (settings.brute_force.window, settings.brute_force.lockout) == (60.0, 300.0)
    assert settings.circuit_breaker.open_for == 2.0


def test_key_prefix_with_a_hash_tag_is_rejected() -> None:
    with pytest.raises(ValidationError, match="must not contain"):
        RateLimitSettings.model_validate({"redis": {"key_prefix": "{rl}:"}})


def test_unknown_setting_is_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        RateLimitSettings.model_validate({"stor": "redis"})


def test_inline_domains_must_be_unique() -> None:
    with pytest.raises(ValidationError, match="duplicate domain 'a'"):
        RateLimitSettings.model_validate({"domains": [{"domain": "a"}, {"domain": "a"}]})


def test_tls_with_a_plain_redis_url_is_rejected_rather_than_sent_in_clear() -> None:
    with pytest.raises(ValidationError, match="use a rediss:// URL"):
        RateLimitSettings.model_validate(
            {"redis": {"url": "redis://redis:6379/0", "tls": {"ca_file": "/etc/ca.crt"}}}
        )


def test_the_memory_store_key_cap_reaches_the_store() -> None:
    from authz_service.ratelimit.factory import build_store
    from authz_service.ratelimit.memory_store import MemoryStore

    assert RateLimitSettings().memory_max_keys == 1_000_000
    settings = RateLimitSettings.model_validate(
        {"memory_max_keys": 2, "local_over_limit_cache": False}
    )
    store = build_store(settings)
    assert isinstance(store, MemoryStore)
    # What authz_quota_store{metric=...} reports.
    assert store.stats() == {"memory_keys": 0.0, "memory_max_keys": 2.0}
    with pytest.raises(ValidationError):
        RateLimitSettings.model_validate({"memory_max_keys": 0})
