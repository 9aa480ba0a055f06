"""RedisStore on the pipelined cluster connection (redis_cluster_pipeline.py) while slots move:
a MOVED slot is followed and the count carries on where the keys went, a migrating slot's ASK
is followed with ASKING, and a master that goes away fails the call, not the process. A cluster
of its own: these tests move slots."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from authz_service.ratelimit.counters import counter_base
from authz_service.ratelimit.redis_store import RedisStore
from authz_service.ratelimit.store import Hit, StoreUnavailable
from authz_service.schema import RedisSettings
from tests.support.redis import LocalRedisCluster, RedisServer, start_cluster

pytestmark = pytest.mark.redis

NOW = 1_700_000_000.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    started = start_cluster(tmp_path_factory.mktemp("moving-cluster"))
    yield started
    started.stop()


@pytest.fixture
async def store(cluster: LocalRedisCluster) -> AsyncIterator[RedisStore]:
    settings = RedisSettings(url=cluster.url, cluster=True, key_prefix="mv:", timeout_ms=2000)
    assert settings.connection == "pipelined"  # the default, under test here
    built = RedisStore.from_settings(settings)
    yield built
    await built.close()


def fresh_hit(limit: int = 10) -> Hit:
    user = uuid.uuid4().hex
    return Hit(counter_base("edge", [("user", user)]) + "|f60000.0", "fixed_window", limit, 60, 1)


def slot_of(node: RedisServer, hit: Hit, key_prefix: str = "mv:") -> int:
    return int(node.cli("CLUSTER", "KEYSLOT", key_prefix + hit.key).strip())


def owner(cluster: LocalRedisCluster, slot: int) -> RedisServer:
    with redis.Redis(port=cluster.nodes[0].port) as client:
        for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return next(n for n in cluster.nodes if n.port == int(master[1]))
    raise AssertionError(f"no owner for slot {slot}")


def node_id(node: RedisServer) -> str:
    return node.cli("CLUSTER", "MYID").strip()


def start_migration(source: RedisServer, target: RedisServer, slot: int) -> None:
    target.cli("CLUSTER", "SETSLOT", str(slot), "IMPORTING", node_id(source))
    source.cli("CLUSTER", "SETSLOT", str(slot), "MIGRATING", node_id(target))


def move_keys(source: RedisServer, target: RedisServer, slot: int) -> None:
    keys = source.cli("CLUSTER", "GETKEYSINSLOT", str(slot), "100").split()
    if keys:
        migrate = ["MIGRATE", "127.0.0.1", str(target.port), "", "0", "5000", "KEYS", *keys]
        source.cli(*migrate)


def finish_migration(cluster: LocalRedisCluster, target: RedisServer, slot: int) -> None:
    for node in cluster.nodes:
        node.cli("CLUSTER", "SETSLOT", str(slot), "NODE", node_id(target))


async def test_a_moved_slot_is_followed_and_counting_carries_on_where_the_keys_went(
    store: RedisStore, cluster: LocalRedisCluster
) -> None:
    hit = fresh_hit()
    first = await store.apply([hit], NOW)  # the store now knows the slot's owner
    slot = slot_of(cluster.nodes[0], hit)
    source = owner(cluster, slot)
    target = next(n for n in cluster.nodes if n is not source)
    start_migration(source, target, slot)
    move_keys(source, target, slot)
    finish_migration(cluster, target, slot)

    second = await store.apply([hit], NOW)  # sent to the old owner: MOVED, then the new one
    third = await store.apply([hit], NOW)  # the map was read again: straight to the new one

    assert [v[0].remaining for v in (first, second, third)] == [9, 8, 7]
    assert int(target.cli("CLUSTER", "COUNTKEYSINSLOT", str(slot)).strip()) == 1
    assert int(source.cli("CLUSTER", "COUNTKEYSINSLOT", str(slot)).strip()) == 0


async def test_a_migrating_slot_is_followed_with_asking_to_where_its_new_keys_go(
    store: RedisStore, cluster: LocalRedisCluster
) -> None:
    warm = fresh_hit()
    await store.apply([warm], NOW)  # the slot map is read
    hit = fresh_hit()
    slot = slot_of(cluster.nodes[0], hit)
    source = owner(cluster, slot)
    target = next(n for n in cluster.nodes if n is not source)
    move_keys(source, target, slot)  # nothing of ours there yet; others' keys go first
    start_migration(source, target, slot)
    try:
        # The key is not on the migrating source: it answers ASK; the store sends ASKING and
        # the script to the importing target.
        answers = [await store.apply([hit], NOW) for _ in range(2)]
        on_target = int(target.cli("CLUSTER", "COUNTKEYSINSLOT", str(slot)).strip())
    finally:
        move_keys(source, target, slot)
        finish_migration(cluster, target, slot)

    assert [a[0].remaining for a in answers] == [9, 8]
    assert on_target == 1


async def test_a_master_that_stops_answering_fails_the_call_with_the_store_error(
    tmp_path: Path,
) -> None:
    small = start_cluster(tmp_path / "failing", masters=3)
    settings = RedisSettings(url=small.url, cluster=True, key_prefix="f:", timeout_ms=300)
    store = RedisStore.from_settings(settings)
    try:
        failing = small.nodes[1]
        hits = [fresh_hit() for _ in range(12)]
        # At least one of them on the master that is killed: random keys alone miss it about
        # one time in a hundred.
        while not any(owner(small, slot_of(failing, hit, "f:")) is failing for hit in hits):
            hits.append(fresh_hit())
        assert all(v.allowed for v in await store.apply(hits, NOW))
        failing.kill()
        with pytest.raises(StoreUnavailable):
            await store.apply(hits, NOW)
    finally:
        await store.close()
        small.stop()
