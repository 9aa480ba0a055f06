"""Redis clients side by side: CPU per call of the quota store's real script, in one run.

Each row runs the EVALSHA that RedisStore sends for one ShouldRateLimit with three
descriptors (same script, keys and arguments) from `--callers` concurrent callers for
`--seconds`, in this process, against one redis-server. Rows take turns (`--rounds`,
interleaved; medians). CPU is this process's (and redis-server's) user + system time from
/proc, per call; /proc/loadavg is recorded before and after, since on a shared 2-core machine
other load skews absolute figures (the ratios within one run are what to compare).

    python -m benchmarks.redis_clients [--seconds 3] [--rounds 3] [--callers 16]
        [--out benchmarks/results/redis-clients.txt]

Rows: redis-py asyncio as RedisStore used it (BlockingConnectionPool, hiredis parser), the
same with redis-py's pure-Python parser, redis-py on one connection with concurrent calls
auto-pipelined (collected per event-loop iteration into one non-transactional pipeline),
coredis (if installed: pip install coredis), our PipelinedRedis (redis_pipeline.py), the
whole store chain (RedisStore + breaker + batching) on redis-py's pool and on PipelinedRedis,
and RedisStore on a local 3-master Redis Cluster (three descriptors: three slots, three script
calls at once) through redis-py's cluster client and through PipelinedCluster; their Redis
CPU is the three masters'.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from redis._parsers import _AsyncRESP2Parser  # redis-py's pure-Python parser
from redis.asyncio import BlockingConnectionPool, Redis

from authz_service.ratelimit.factory import build_store
from authz_service.ratelimit.redis_store import _SHA, SCRIPT, RedisStore, _arguments, create_client
from authz_service.ratelimit.store import Hit
from authz_service.schema import RateLimitSettings, RedisSettings
from benchmarks.procstat import cpu_seconds
from benchmarks.report import loadavg, publish_text
from tests.support.redis import LocalRedisCluster, start_cluster
from tools.processes import free_port, wait_for_port

HITS = [
    Hit("{bench|client_ip=192.0.2.1}", "fixed_window", 1_000_000_000, 1.0, 1),
    Hit("{bench|user=alice}", "fixed_window", 1_000_000_000, 1.0, 1),
    Hit("{bench|path=/orders}", "fixed_window", 1_000_000_000, 1.0, 1),
]
Call = Callable[[], Awaitable[Any]]


def script_call() -> tuple[list[str], list[str]]:
    return _arguments(HITS, time.time(), "bench:")


class AutoPipelined:
    """redis-py on one connection: calls made in one event-loop iteration share a pipeline."""

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._queued: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []

    def evalsha(self, *args: Any) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        if not self._queued:
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._send()))
        self._queued.append((args, future))
        return future

    async def _send(self) -> None:
        batch, self._queued = self._queued, []
        pipe = self._client.pipeline(transaction=False)
        for args, _ in batch:
            pipe.evalsha(*args)
        for (_, future), reply in zip(batch, await pipe.execute(), strict=True):
            future.set_result(reply)


Row = tuple[Call, Callable[[], Awaitable[None]]]  # (one call, close)


async def rows(redis_url: str, cluster_url: str) -> dict[str, Row]:
    """name -> (one call, close); the cluster rows' names start with "cluster"."""
    settings = RedisSettings(url=redis_url, timeout_ms=5000, connection="pool")
    table: dict[str, Row] = {}

    def evalsha_on(client: Any) -> Call:
        async def call() -> Any:
            keys, args = script_call()
            return await client.evalsha(_SHA, len(keys), *keys, *args)

        return call

    pooled = create_client(settings)
    table["redis-py pool, hiredis parser (as used)"] = (evalsha_on(pooled), pooled.aclose)
    python_parser = Redis.from_pool(
        BlockingConnectionPool.from_url(
            redis_url, max_connections=64, parser_class=_AsyncRESP2Parser
        )
    )
    table["redis-py pool, Python parser"] = (evalsha_on(python_parser), python_parser.aclose)
    single = Redis.from_pool(BlockingConnectionPool.from_url(redis_url, max_connections=1))
    table["redis-py 1 connection, auto-pipelined"] = (
        evalsha_on(AutoPipelined(single)),
        single.aclose,
    )
    try:
        import coredis  # optional: only this row needs it

        core = coredis.Redis.from_url(redis_url, max_connections=64)
        await core.__aenter__()

        async def core_call() -> Any:
            keys, args = script_call()
            return await core.evalsha(_SHA, keys=keys, args=args)

        async def core_close() -> None:
            await core.__aexit__(None, None, None)

        table["coredis"] = (core_call, core_close)
    except ImportError:
        print("coredis is not installed: no coredis row")
    pipelined = create_client_pipelined(redis_url)
    table["PipelinedRedis (ours)"] = (evalsha_on(pipelined), pipelined.aclose)
    for name, connection in (("pool", "pool"), ("PipelinedRedis", "pipelined")):
        store = build_store(
            RateLimitSettings.model_validate(
                {
                    "store": "redis",
                    "redis": {"url": redis_url, "timeout_ms": 5000, "connection": connection},
                    "local_over_limit_cache": False,
                }
            )
        )

        def chain_call(store: Any = store) -> Awaitable[Any]:
            return store.apply(HITS, time.time())  # type: ignore[no-any-return]

        table[f"store chain on {name} (breaker, batching)"] = (chain_call, store.close)
    for name, connection in (
        ("redis-py cluster client", "pool"),
        ("PipelinedCluster", "pipelined"),
    ):
        # RedisStore alone: one script call per hash slot, here three, run concurrently.
        cluster = RedisStore.from_settings(
            RedisSettings(url=cluster_url, cluster=True, timeout_ms=5000, connection=connection)
        )

        def cluster_call(store: Any = cluster) -> Awaitable[Any]:
            return store.apply(HITS, time.time())  # type: ignore[no-any-return]

        table[f"cluster, 3 masters: RedisStore on {name}"] = (cluster_call, cluster.close)
    return table


def create_client_pipelined(redis_url: str) -> Any:
    store = RedisStore.from_settings(RedisSettings(url=redis_url, timeout_ms=5000))
    return store._client  # the client RedisStore builds, as configured


async def drive(
    call: Call, callers: int, seconds: float, redis_pids: list[int]
) -> tuple[float, ...]:
    """(calls/s, our CPU µs per call, redis-server CPU µs per call)."""
    stop = time.monotonic() + seconds
    counts = [0] * callers

    async def caller(index: int) -> None:
        while time.monotonic() < stop:
            await call()
            counts[index] += 1

    cpu_start, redis_start, wall_start = (
        cpu_seconds([os.getpid()]),
        cpu_seconds(redis_pids),
        time.monotonic(),
    )
    await asyncio.gather(*(caller(i) for i in range(callers)))
    wall = time.monotonic() - wall_start
    calls = sum(counts)
    ours = (cpu_seconds([os.getpid()]) - cpu_start) / calls * 1e6
    redis = (cpu_seconds(redis_pids) - redis_start) / calls * 1e6
    return calls / wall, ours, redis


async def measure(
    args: argparse.Namespace, redis_url: str, redis_pid: int, cluster: LocalRedisCluster
) -> list[str]:
    loader = Redis.from_url(redis_url)
    await loader.script_load(SCRIPT)  # the rows run EVALSHA only
    await loader.aclose()
    cluster_pids = [node.process.pid for node in cluster.nodes if node.process is not None]
    table = await rows(redis_url, cluster.url)
    for call, _ in table.values():  # warm: connect
        await asyncio.gather(*(call() for _ in range(args.callers)))
    results: dict[str, list[tuple[float, ...]]] = {name: [] for name in table}
    for _ in range(args.rounds):
        for name, (call, _) in table.items():
            pids = cluster_pids if name.startswith("cluster") else [redis_pid]
            results[name].append(await drive(call, args.callers, args.seconds, pids))
    for _, close in table.values():
        await close()
    baseline = statistics.median(r[1] for r in results["redis-py pool, hiredis parser (as used)"])
    lines = [
        f"{'client':58} {'calls/s':>8} {'CPU µs/call':>12} {'redis µs/call':>14} {'÷ as used':>10}"
    ]
    for name, figures in results.items():
        rate, ours, redis = (statistics.median(f[i] for f in figures) for i in range(3))
        lines.append(f"{name:58} {rate:8.0f} {ours:12.1f} {redis:14.1f} {ours / baseline:10.2f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as work:
        redis = subprocess.Popen(
            ["redis-server", "--port", str(port), "--save", "", "--dir", work],
            stdout=subprocess.DEVNULL,
        )
        cluster = start_cluster(Path(work) / "cluster")
        try:
            wait_for_port(port)
            load_before = loadavg()
            url = f"redis://127.0.0.1:{port}/0"
            lines = asyncio.run(measure(args, url, redis.pid, cluster))
            load_after = loadavg()
        finally:
            redis.terminate()
            redis.wait(timeout=10)
            cluster.stop()
    heading = (
        f"EVALSHA of RedisStore's script, 3 descriptors; {args.callers} concurrent callers, "
        f"{args.rounds} interleaved rounds of {args.seconds:g} s, medians; {os.cpu_count()} cores"
    )
    publish_text(heading, load_before, load_after, lines, args.out)


if __name__ == "__main__":
    main()
