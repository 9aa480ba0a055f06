"""Where ShouldRateLimit's CPU goes, in one run: grpc.aio servers that each add one step.

Every row is a grpc.aio server with the same options answering the harness's ShouldRateLimit
(three descriptors, 1,000 rotating requests) under the harness's h2grpc loader, rows
interleaved round by round; CPU µs per request of the server process, and of redis-server
(which shares the 2 cores), from /proc:

    null            answers OK at once (benchmarks.null_server's handler)
    suspend         awaits one event-loop iteration, then answers OK
    round_trip      runs the store's real script for three descriptors on Redis through
                    PipelinedRedis (one round trip), then answers a constant OK
    store           the same hits through RedisStore.apply (arguments, verdicts)
    chain           the same hits through the store chain build_store makes (breaker around
                    the store, batching around the breaker; no local cache)
    limiter         the real RateLimiter and servicer (store chain: breaker, batching, the
                    pipelined connection) without telemetry or audit
    limiter_pool    the same on redis-py's connection pool (`connection: pool`)

The steps between rows say what the grpc.aio floor, a suspension, a Redis round trip and our
own logic each cost; scenario 2 of benchmarks/run.py measures the whole service (audit and
metrics on) against the null handler.

    python -m benchmarks.ratelimit_rls [--seconds 3] [--rounds 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import yaml
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from redis.exceptions import NoScriptError

from authz_service.grpc.ratelimit_servicer import add_ratelimit_servicer
from authz_service.grpc.server_options import SERVER_OPTIONS
from authz_service.ratelimit.factory import build_limiter, build_store
from authz_service.ratelimit.redis_pipeline import PipelinedRedis, RedisAddress
from authz_service.ratelimit.redis_store import _SHA, SCRIPT, RedisStore, _arguments
from authz_service.ratelimit.rules import compile_rules, parse_domain_document
from authz_service.ratelimit.store import Hit, QuotaStore
from authz_service.schema import RateLimitSettings
from benchmarks import fixtures, messages
from benchmarks.load import build_h2grpc, run_h2grpc
from benchmarks.measure import Target, run_group
from benchmarks.report import loadavg, publish_text
from benchmarks.services import start_redis
from tools.processes import Process, free_port, spawn, wait_for_port

MODES = ("null", "suspend", "round_trip", "store", "chain", "limiter", "limiter_pool")
OK = rls_pb2.RateLimitResponse(overall_code=rls_pb2.RateLimitResponse.OK)
HITS = [
    Hit("{bench|remote_address=10.0.0.1}", "fixed_window", 1_000_000_000, 1.0, 1),
    Hit("{bench|user=alice}", "fixed_window", 1_000_000_000, 60.0, 1),
    Hit("{bench|tier=gold|endpoint=orders}", "fixed_window", 1_000_000_000, 3600.0, 1),
]


class Answer(rls_pb2_grpc.RateLimitServiceServicer):  # type: ignore[misc]
    def __init__(self, mode: str, redis: PipelinedRedis, store: QuotaStore) -> None:
        self._mode = mode
        self._redis = redis
        self._store = store

    async def ShouldRateLimit(self, request: Any, context: Any) -> Any:
        if self._mode == "suspend":
            await asyncio.sleep(0)
        elif self._mode == "round_trip":
            keys, args = _arguments(HITS, time.time(), "bench:")
            try:
                await self._redis.evalsha(_SHA, len(keys), *keys, *args)
            except NoScriptError:  # once per server: EVAL loads it
                await self._redis.eval(SCRIPT, len(keys), *keys, *args)
        elif self._mode in ("store", "chain"):
            await self._store.apply(HITS, time.time())
        return OK


def settings_for(mode: str, redis_url: str) -> tuple[RateLimitSettings, list[Any]]:
    """The harness's rate_limit section (and its domains) on this Redis, for `mode`."""
    section = fixtures.rate_limit_section(redis_url)
    domains = section.pop("domains")
    connection = "pool" if mode == "limiter_pool" else "pipelined"
    section["redis"].update(timeout_ms=2000, connection=connection)
    settings = RateLimitSettings.model_validate({**section, "local_over_limit_cache": False})
    return settings, domains


async def serve(mode: str, port: int, redis_url: str) -> None:
    server = grpc.aio.server(options=list(SERVER_OPTIONS))
    redis = PipelinedRedis(RedisAddress.from_url(redis_url, None, None), 5.0, 5.0)
    settings, domains = settings_for(mode, redis_url)
    chained = mode == "chain" or mode.startswith("limiter")
    store = build_store(settings) if chained else RedisStore.from_settings(settings.redis)
    if mode.startswith("limiter"):
        rules = compile_rules([parse_domain_document(yaml.safe_dump(d), "bench") for d in domains])
        limiter = build_limiter(settings, rules, store=store)
        add_ratelimit_servicer(server, lambda: limiter)
    else:
        rls_pb2_grpc.add_RateLimitServiceServicer_to_server(Answer(mode, redis, store), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await stopping.wait()
    await server.stop(1.0)
    await redis.aclose()
    await store.close()


def start(mode: str, redis_url: str, workdir: Path) -> tuple[Process, int]:
    port = free_port()
    argv = [sys.executable, "-m", "benchmarks.ratelimit_rls", "--serve", mode, str(port), redis_url]
    process = spawn(f"rls-{mode}", argv, workdir)
    wait_for_port(port, process=process.popen)
    return process, port


def measure(args: argparse.Namespace, workdir: Path) -> list[str]:
    binary, missing = build_h2grpc(workdir)
    assert binary is not None, missing
    frames = fixtures.write_frames(workdir / "rls.bin", fixtures.rate_limit_bodies())
    redis = start_redis(workdir)
    assert not isinstance(redis, str), redis
    processes = [redis[0]]
    try:
        targets = []
        for mode in MODES:
            process, port = start(mode, f"redis://127.0.0.1:{redis[1]}/0", workdir)
            processes.append(process)

            def load(seconds: float, port: int = port) -> Any:
                return run_h2grpc(
                    binary,
                    ports=[port],
                    path=messages.RATE_LIMIT_PATH,
                    data=frames,
                    conns=args.conns,
                    streams=args.streams,
                    duration=seconds,
                )

            # Rows run one at a time: Redis's CPU meanwhile is that row's.
            cpu = {"server": process.popen.pid, "redis": redis[0].popen.pid}
            targets.append(Target(mode, mode, load, cpu))
        rows = run_group(targets, rounds=args.rounds, seconds=args.seconds, warmup=1.0)
    finally:
        for process in processes:
            process.popen.send_signal(signal.SIGTERM)
        for process in processes:
            process.popen.wait(timeout=10)
    null = rows[0]
    head = f"{'server':14} {'req/s':>8} {'÷ null':>7} {'CPU µs/req':>11} {'+ vs null':>10}"
    lines = [f"{head} {'Redis µs/req':>13} errors"]
    for row in rows:
        cpu = row["server_cpu_us_per_req"]
        lines.append(
            f"{row['key']:14} {row['rps']:8.0f} {row['rps'] / null['rps']:7.2f} {cpu:11.0f} "
            f"{cpu - null['server_cpu_us_per_req']:10.0f} {row['redis_cpu_us_per_req']:13.0f} "
            f"{sum(row['errors'].values())}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--conns", type=int, default=16)  # as the harness
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--serve", nargs=3, metavar=("MODE", "PORT", "REDIS_URL"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        mode, port, redis_url = args.serve
        asyncio.run(serve(mode, int(port), redis_url))
        return
    load_before = loadavg()
    with tempfile.TemporaryDirectory(prefix="authz-rls-") as work:
        lines = measure(args, Path(work))
    heading = (
        f"ShouldRateLimit, 3 descriptors, grpc.aio servers side by side: {args.rounds} "
        f"interleaved rounds of {args.seconds:g} s, h2grpc {args.conns} connections x "
        f"{args.streams} streams, medians"
    )
    publish_text(heading, load_before, loadavg(), lines, args.out)


if __name__ == "__main__":
    main()
