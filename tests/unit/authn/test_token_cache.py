from __future__ import annotations

from authz_service.authn.token_cache import TokenCache
from authz_service.decisions import AuthMethod, Identity


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def identity(principal: str, expires_at: float | None = 2_000.0) -> Identity:
    return Identity(principal=principal, method=AuthMethod.JWT, expires_at=expires_at)


def test_cache_returns_a_stored_identity_and_counts_hits_and_misses() -> None:
    cache = TokenCache(10, FakeClock())
    assert cache.get("t1") is None
    cache.put("t1", identity("alice"))
    assert cache.get("t1") == identity("alice")
    assert (cache.hits, cache.misses) == (1, 1)


def test_cache_evicts_the_least_recently_used_entry_beyond_its_bound() -> None:
    cache = TokenCache(2, FakeClock())
    cache.put("t1", identity("one"))
    cache.put("t2", identity("two"))
    assert cache.get("t1") is not None  # t1 is now the most recently used
    cache.put("t3", identity("three"))
    assert len(cache) == 2
    assert cache.get("t2") is None
    assert cache.get("t1") is not None
    assert cache.get("t3") is not None


def test_entry_expires_with_the_token() -> None:
    clock = FakeClock(1_000.0)
    cache = TokenCache(10, clock)
    cache.put("t1", identity("alice", expires_at=1_060.0))
    clock.now = 1_059.9
    assert cache.get("t1") is not None
    clock.now = 1_060.0
    assert cache.get("t1") is None
    assert len(cache) == 0


def test_cache_of_size_zero_keeps_nothing() -> None:
    cache = TokenCache(0, FakeClock())
    cache.put("t1", identity("alice"))
    assert cache.get("t1") is None
    assert len(cache) == 0
