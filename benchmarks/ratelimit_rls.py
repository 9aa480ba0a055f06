"""ShouldRateLimit with three descriptors on Redis, against the null handler, in one run.

Starts redis-server, the null server (benchmarks.null_server) and a RateLimitService on Redis,
then drives each with h2load in turns (null, ours, null, ours) and prints req/s, the ratio, and
Redis commands per RPC from INFO commandstats. Rough: on 2 cores everything shares the CPU.

    python -m benchmarks.ratelimit_rls [--requests 20000] [--clients 16] [--streams 8]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc
from envoy.service.ratelimit.v3 import rls_pb2

from authz_service.grpc.ratelimit_servicer import add_ratelimit_servicer
from authz_service.grpc.server_options import SERVER_OPTIONS
from authz_service.ratelimit.factory import build_limiter
from authz_service.ratelimit.rules import compile_rules, parse_domain_document
from authz_service.schema import RateLimitSettings
from tests.support import free_port, wait_for_port

PATH = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"
CONFIG = """
domain: bench
descriptors:
  - {key: client_ip, rate_limit: {unit: second, requests_per_unit: 1000000000}}
  - {key: user, rate_limit: {unit: second, requests_per_unit: 1000000000}}
  - {key: path, rate_limit: {unit: second, requests_per_unit: 1000000000}}
"""


def request_frame() -> bytes:
    request = rls_pb2.RateLimitRequest(domain="bench")
    for key, value in (("client_ip", "192.0.2.1"), ("user", "alice"), ("path", "/orders")):
        request.descriptors.add().entries.add(key=key, value=value)
    body = request.SerializeToString()
    return b"\x00" + struct.pack(">I", len(body)) + body  # gRPC length-prefixed message


async def serve(listen: str, redis_url: str) -> None:
    settings = RateLimitSettings.model_validate(
        {
            # Generous timeout: measure throughput, not how often an overloaded 2-core box
            # misses the 50 ms default (Envoy's own ratelimit filter gives up at 20 ms).
            "store": "redis",
            "redis": {"url": redis_url, "timeout_ms": 2000},
            "local_over_limit_cache": False,
        }
    )
    limiter = build_limiter(settings, compile_rules([parse_domain_document(CONFIG, "b")]))
    server = grpc.aio.server(options=list(SERVER_OPTIONS))
    add_ratelimit_servicer(server, lambda: limiter)
    server.add_insecure_port(listen)
    await server.start()
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await stopping.wait()
    await server.stop(1.0)
    await limiter.close()


def h2load(port: int, body: Path, args: argparse.Namespace) -> float:
    done = subprocess.run(
        [
            "h2load",
            "-n",
            str(args.requests),
            "-c",
            str(args.clients),
            "-m",
            str(args.streams),
            "-d",
            str(body),
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            f"http://127.0.0.1:{port}{PATH}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    if not re.search(rf"{args.requests} succeeded", done.stdout):
        raise RuntimeError(done.stdout)
    match = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", done.stdout)
    assert match, done.stdout
    return float(match.group(1))


def commandstats(port: int) -> dict[str, int]:
    out = subprocess.run(
        ["redis-cli", "-p", str(port), "INFO", "commandstats"], capture_output=True, text=True
    ).stdout
    return {m[0]: int(m[1]) for m in re.findall(r"cmdstat_([\w|]+):calls=(\d+)", out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--serve", nargs=2, metavar=("LISTEN", "REDIS_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(*args.serve))
        return
    assert shutil.which("h2load") and shutil.which("redis-server"), "needs h2load, redis-server"
    work = Path(tempfile.mkdtemp())
    body = work / "request.bin"
    body.write_bytes(request_frame())
    redis_port, null_port, rls_port = free_port(), free_port(), free_port()
    processes = [
        subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--save", "", "--dir", str(work)],
            stdout=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.null_server", "--listen", f"127.0.0.1:{null_port}"]
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.ratelimit_rls",
                "--serve",
                f"127.0.0.1:{rls_port}",
                f"redis://127.0.0.1:{redis_port}/0",
            ]
        ),
    ]
    try:
        for port in (redis_port, null_port, rls_port):
            wait_for_port(port)
        h2load(rls_port, body, argparse.Namespace(requests=500, clients=1, streams=1))  # warm
        subprocess.run(["redis-cli", "-p", str(redis_port), "CONFIG", "RESETSTAT"], check=True)
        null_rates, our_rates = [], []
        for _ in range(2):
            null_rates.append(h2load(null_port, body, args))
            our_rates.append(h2load(rls_port, body, args))
        stats = commandstats(redis_port)
        rpcs = 2 * args.requests
        null_best, ours_best = max(null_rates), max(our_rates)
        print(f"null handler      : {' '.join(f'{r:8.0f}' for r in null_rates)} req/s")
        print(f"ShouldRateLimit x3: {' '.join(f'{r:8.0f}' for r in our_rates)} req/s (Redis)")
        print(f"ratio (best/best) : {ours_best / null_best:.2f}")
        # h2load counts gRPC errors as successes (HTTP 200): EVALSHA per RPC = 1.000 shows
        # every RPC really reached Redis, once.
        print(f"Redis EVALSHA/RPC : {stats.get('evalsha', 0) / rpcs:.3f}")
        print(f"Redis commands    : {stats}")
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
