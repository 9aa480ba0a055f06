"""The store interface itself: the same answers as the reference model, expiry on the clock
passed in, reset, atomic concurrent calls and the figures `stats()` reports."""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from authz_service.ratelimit.counters import counter_base
from authz_service.ratelimit.memory_store import MemoryStore
from authz_service.ratelimit.store import Hit, QuotaStore, StoreAlgorithm
from tests.integration.ratelimit.conformance.conftest import Backend

ALGORITHMS: list[StoreAlgorithm] = ["fixed_window", "sliding_window", "token_bucket", "lockout"]
EPOCH = 1_700_000_000.0


def descriptor_hit(value: str, limit: int = 5) -> Hit:
    """A hit named as the limiter names them: one hash slot per descriptor."""
    return Hit(counter_base("edge", [("user", value)]) + "|f60000.0", "fixed_window", limit, 60, 1)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_answers_match_the_reference_model_bit_for_bit(
    exact_store: QuotaStore, algorithm: StoreAlgorithm
) -> None:
    memory = MemoryStore()
    rng = random.Random(algorithm)
    now = EPOCH
    for _ in range(300):
        now += rng.choice([0.0, 0.0, 0.013, 0.25, 1.7, 9.0])
        hits = [
            Hit(
                f"{{k{rng.randrange(3)}}}|{algorithm}",
                algorithm,
                limit=rng.choice([0, 1, 5, 20]) if algorithm != "lockout" else 4,
                window_s=10.0,
                hits=rng.choice([0, 1, 1, 1, 3]),
                charge_rejected=rng.random() < 0.5 and algorithm != "token_bucket",
                lockout_s=15.0,
            )
            for _ in range(rng.randrange(1, 4))
        ]
        # Limits differ between calls on one key only in the sequence, never within it.
        hits = [h for h in hits if h.key == hits[0].key] or hits[:1]
        assert await exact_store.apply(hits, now) == await memory.apply(hits, now)


async def test_batches_spanning_many_descriptors_match_the_reference_model(
    exact_store: QuotaStore,
) -> None:
    memory = MemoryStore()
    rng = random.Random(7)
    now = EPOCH
    for _ in range(100):
        now += rng.choice([0.0, 0.3, 2.0, 20.0])
        batch = [descriptor_hit(f"u{rng.randrange(6)}", limit=3) for _ in range(3)]
        assert await exact_store.apply(batch, now) == await memory.apply(batch, now)


async def test_window_expiry_follows_the_clock_passed_in(store: QuotaStore) -> None:
    hit = Hit("{w}|f", "fixed_window", 2, 60.0, 1)
    start = 1_699_999_980.0  # aligned on a minute
    allowed = [(await store.apply([hit], start + t))[0].allowed for t in (0, 1, 59.9, 60.0)]
    assert allowed == [True, True, False, True]


async def test_reset_forgets_the_counters_of_every_algorithm_and_slot(store: QuotaStore) -> None:
    hits = [
        Hit("{r}|f", "fixed_window", 1, 60.0, 1),
        Hit("{r}|s", "sliding_window", 1, 60.0, 1),
        Hit("{r}|t", "token_bucket", 1, 60.0, 1, charge_rejected=False),
        *(descriptor_hit(f"reset{i}", limit=1) for i in range(6)),  # spread over the slots
    ]
    await store.apply(hits, EPOCH)
    assert not any(v.allowed for v in await store.apply(hits, EPOCH))
    await store.reset(hits, EPOCH)
    assert all(v.allowed for v in await store.apply(hits, EPOCH))


async def test_only_looking_counts_nothing(store: QuotaStore) -> None:
    look = Hit("{l}|f", "fixed_window", 2, 60.0, 0)
    take = Hit("{l}|f", "fixed_window", 2, 60.0, 1)
    for _ in range(5):
        assert (await store.apply([look], EPOCH))[0].remaining == 2
    assert [(await store.apply([take], EPOCH))[0].allowed for _ in range(3)] == [True, True, False]


async def test_concurrent_calls_admit_exactly_the_limit(store: QuotaStore) -> None:
    hot, cold = descriptor_hit("hot", limit=40), descriptor_hit("cold", limit=1000)
    results = await asyncio.gather(*(store.apply([hot, cold], EPOCH) for _ in range(150)))
    assert sum(r[0].allowed for r in results) == 40
    assert all(r[1].allowed for r in results)


async def test_stats_report_every_figure_of_the_chain(store: QuotaStore, backend: Backend) -> None:
    await store.apply([descriptor_hit("seen")], EPOCH)
    figures = store.stats()
    assert set(figures) == backend.figures
    assert all(isinstance(value, float) and math.isfinite(value) for value in figures.values())
    assert figures.get("breaker_open", 0.0) == 0.0
    assert figures.get("redis_commands_in_flight", 0.0) == 0.0  # idle once answered
    assert figures.get("memory_keys", 1.0) >= 1.0
