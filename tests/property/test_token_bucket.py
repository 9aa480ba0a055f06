"""Hypothesis over the token bucket (GCRA) at real-world timestamps.

Properties, for any limit (1 to 2^32 - 1), any window (a millisecond to a year) and any
instant from 2000 to 2100: a burst, however it is split into hits, admits exactly the limit
and never one more; tokens come back one interval at a time, exactly; no sequence of hits
gets more than the burst plus the refill; and the Redis script answers what the reference
model (the memory store) answers, bit for bit.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authz_service.ratelimit.algorithms import ArrivalTime, Verdict, token_bucket
from authz_service.ratelimit.memory_store import MemoryStore
from authz_service.ratelimit.redis_store import RedisStore
from authz_service.ratelimit.store import Hit
from authz_service.schema import RedisSettings
from authz_service.schema.ratelimit_rules import UNIT_SECONDS
from tests.support.redis import RedisServer, redis_server  # noqa: F401

EXAMPLES = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
LIMITS = st.integers(1, 30) | st.integers(1, 2**32 - 1)
WINDOWS_MS = st.sampled_from([s * 1000 for s in UNIT_SECONDS.values()]) | st.integers(
    1, UNIT_SECONDS["year"] * 1000
)
START_MS = st.integers(946_684_800_000, 4_102_444_800_000)  # 2000-01-01 to 2100-01-01
# Below this, `remaining` is exact too (see algorithms._tokens_left).
EXACT_REMAINING = 2**53


@st.composite
def splits(draw: st.DrawFn, total: int) -> list[int]:
    """`total` cut into up to 20 hits (some of them 0: only looking)."""
    cuts = sorted(draw(st.lists(st.integers(0, total), max_size=19)))
    return [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]


@st.composite
def bursts(draw: st.DrawFn) -> tuple[int, int, int, list[int]]:
    limit = draw(LIMITS)
    return limit, draw(WINDOWS_MS), draw(START_MS), draw(splits(limit))


@EXAMPLES
@given(bursts())
def test_a_burst_admits_exactly_the_limit_at_any_epoch_sized_instant(
    burst: tuple[int, int, int, list[int]],
) -> None:
    limit, window_ms, now_ms, hits = burst
    tat: ArrivalTime | None = None
    taken = 0
    for size in hits:
        tat, verdict = token_bucket(tat, size, limit, window_ms, now_ms)
        assert verdict.allowed
        taken += size
        if limit * window_ms < EXACT_REMAINING:
            assert verdict.remaining == limit - taken
    assert tat == ArrivalTime(now_ms + window_ms, 0, limit)
    _, one_more = token_bucket(tat, 1, limit, window_ms, now_ms)
    assert not one_more.allowed


@EXAMPLES
@given(LIMITS, WINDOWS_MS, START_MS, st.data())
def test_tokens_come_back_one_interval_at_a_time(
    limit: int, window_ms: int, start_ms: int, data: st.DataObject
) -> None:
    wait_ms = data.draw(st.integers(0, window_ms))
    tat, _ = token_bucket(None, limit, limit, window_ms, start_ms)  # the whole burst
    back = wait_ms * limit // window_ms  # whole intervals in the wait
    later = start_ms + wait_ms
    if back:
        tat, verdict = token_bucket(tat, back, limit, window_ms, later)
        assert verdict.allowed
    _, one_more = token_bucket(tat, 1, limit, window_ms, later)
    assert not one_more.allowed


@EXAMPLES
@given(LIMITS, WINDOWS_MS, START_MS, st.data())
def test_no_sequence_gets_more_than_the_burst_plus_the_refill(
    limit: int, window_ms: int, start_ms: int, data: st.DataObject
) -> None:
    steps = data.draw(
        st.lists(
            st.tuples(st.integers(0, window_ms), st.integers(0, 3) | st.integers(0, limit + 1)),
            max_size=40,
        )
    )
    tat, now_ms, admitted = None, start_ms, 0
    for gap_ms, hits in steps:
        now_ms += gap_ms
        tat, verdict = token_bucket(tat, hits, limit, window_ms, now_ms)
        admitted += hits if verdict.allowed else 0
    # Each admitted token moves the arrival time on by window / limit, and it may never lie
    # more than a window ahead of now.
    assert admitted * window_ms <= (now_ms - start_ms + window_ms) * limit


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """Hypothesis runs examples synchronously: the stores live on one loop per module."""
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()


@pytest.fixture(scope="module")
def shared_redis(
    loop: asyncio.AbstractEventLoop,
    redis_server: RedisServer,  # noqa: F811
) -> Iterator[RedisStore]:
    store = RedisStore.from_settings(
        RedisSettings(
            url=redis_server.url, key_prefix="tbprop:", timeout_ms=5000, connect_timeout_ms=5000
        )
    )
    yield store
    loop.run_until_complete(store.close())


@st.composite
def store_runs(draw: st.DrawFn) -> tuple[Hit, float, list[int], list[tuple[float, int]]]:
    limit = draw(LIMITS)
    window_s = draw(
        st.sampled_from([float(s) for s in UNIT_SECONDS.values()]) | st.floats(0.001, 3e7)
    )
    start = draw(st.floats(946_684_800.0, 4_102_444_800.0))
    gaps = st.sampled_from([0.0, 0.0, 0.0013]) | st.floats(0, 1.5).map(lambda f: f * window_s)
    hits = st.sampled_from([0, 1, 1, limit, limit + 1]) | st.integers(0, 2**64 - 1)
    steps = draw(st.lists(st.tuples(gaps, hits), max_size=25))
    hit = Hit(f"{{{uuid.uuid4().hex}}}|t", "token_bucket", limit, window_s, 1)
    return hit, start, draw(splits(limit)), steps


@pytest.mark.redis
@EXAMPLES
@given(store_runs())
def test_redis_answers_what_the_memory_store_answers_after_a_whole_burst(
    loop: asyncio.AbstractEventLoop,
    shared_redis: RedisStore,
    run: tuple[Hit, float, list[int], list[tuple[float, int]]],
) -> None:
    hit, now, burst, steps = run
    memory = MemoryStore()

    def both(hits: int, at: float) -> tuple[list[Verdict], list[Verdict]]:
        batch = [Hit(hit.key, "token_bucket", hit.limit, hit.window_s, hits)]
        return (
            loop.run_until_complete(shared_redis.apply(batch, at)),
            loop.run_until_complete(memory.apply(batch, at)),
        )

    for size in burst:
        from_redis, from_memory = both(size, now)
        assert from_redis == from_memory
        assert from_redis[0].allowed
    from_redis, from_memory = both(1, now)
    assert from_redis == from_memory
    assert not from_redis[0].allowed
    for gap, hits in steps:
        now += gap
        from_redis, from_memory = both(hits, now)
        assert from_redis == from_memory
