"""Check latency while the service reloads a large policy file (issue 12: a 5,000-rule reload
took 15 s and pushed p99 past Envoy's 1 s ext_authz timeout).

Starts `authz-service serve` (the code on PYTHONPATH, so an older checkout can be measured
the same way) with an N-rule policy, sends Check calls back to back from this process for a
baseline second, swaps in a changed file and sends SIGHUP, and keeps sending until the
service logs the reload. Prints the reload's wall time and Check latency (p50, p99, max)
before and during the reload.

    .venv/bin/python -m benchmarks.reload_latency [--rules 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import yaml
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from tools.processes import free_port, spawn, wait_for_port


def policy_config(rules: int, port: int, variant: int) -> dict[str, Any]:
    return {
        "server": {"listen": f"127.0.0.1:{port}", "watch_config": False},
        "admin": {"listen": None},
        "telemetry": {"metrics": {"listen": None}, "audit": {"enabled": False}},
        "policies": {
            "default": {
                "rules": [
                    {
                        "name": f"rule-{i}",
                        "match": {"methods": ["GET", "POST"], "paths": [{"prefix": f"/s{i}/"}]},
                        "allow": {"roles_any": [f"role-{i}-{variant}", "admin"]},
                    }
                    for i in range(rules)
                ]
                + [{"name": "rest", "allow": "anonymous"}]
            }
        },
    }


def check_request() -> external_auth_pb2.CheckRequest:
    request = external_auth_pb2.CheckRequest()
    request.attributes.request.http.method = "GET"
    request.attributes.request.http.path = "/not/matched/by/any/numbered/rule"
    request.attributes.request.http.host = "api.local"
    return request


def summary(latencies: list[float]) -> str:
    if not latencies:
        return "no calls"
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{len(ordered)} calls, p50 {statistics.median(ordered) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"
    )


async def loop_lag(rules: int, workdir: Path) -> tuple[float, list[float]]:
    """In this process: the reloader the server uses, and a task that sleeps 1 ms over and
    over; its overshoot while the reload runs is the event loop's lag."""
    from authz_service.authn.jwks_registry import JwksRegistry
    from authz_service.config.reload import ConfigReloader
    from authz_service.services.compiled_config import compile_config

    path = workdir / "in-process.yaml"
    path.write_text(yaml.safe_dump(policy_config(rules, 0, 0), sort_keys=False))
    registry = JwksRegistry()
    reloader = ConfigReloader(path, lambda loaded: compile_config(loaded, registry))
    path.write_text(yaml.safe_dump(policy_config(rules, 0, 1), sort_keys=False))
    lags: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - started - 0.001)

    prober = asyncio.create_task(probe())
    started = time.perf_counter()
    await reloader.reload()
    elapsed = time.perf_counter() - started
    done.set()
    await prober
    await registry.close()
    return elapsed, lags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=5000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        port = free_port()
        path = workdir / "authz.yaml"
        path.write_text(yaml.safe_dump(policy_config(args.rules, port, 0), sort_keys=False))
        changed = yaml.safe_dump(policy_config(args.rules, port, 1), sort_keys=False)
        argv_serve = [sys.executable, "-m", "authz_service", "serve", "--config", str(path)]
        service = spawn("authz", [*argv_serve, "--log-level", "INFO"], workdir)
        try:
            wait_for_port(port, timeout=120, process=service.popen)
            calls: list[tuple[float, float]] = []  # (sent at, latency)
            stop = threading.Event()

            def send() -> None:
                with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                    stub = external_auth_pb2_grpc.AuthorizationStub(channel)
                    request = check_request()
                    while not stop.is_set():
                        started = time.perf_counter()
                        stub.Check(request, timeout=30)
                        calls.append((started, time.perf_counter() - started))

            sender = threading.Thread(target=send)
            sender.start()
            time.sleep(1.0)  # the baseline window (a measurement, not a barrier)
            staging = path.with_name("staging.yaml")
            staging.write_text(changed)
            staging.replace(path)
            hup_at = time.perf_counter()
            service.popen.send_signal(signal.SIGHUP)
            while "config reloaded" not in service.log():
                if time.perf_counter() - hup_at > 120:
                    raise TimeoutError(service.log()[-2000:])
                time.sleep(0.01)
            done_at = time.perf_counter()
            stop.set()
            sender.join()
        finally:
            service.stop()
    before = [latency for sent, latency in calls if sent < hup_at]
    during = [latency for sent, latency in calls if hup_at <= sent < done_at]
    print(f"rules: {args.rules}; reload (SIGHUP to 'config reloaded'): {done_at - hup_at:.2f} s")
    print(f"Check before the reload: {summary(before)}")
    print(f"Check during the reload: {summary(during)}")
    with tempfile.TemporaryDirectory() as tmp:
        elapsed, lags = asyncio.run(loop_lag(args.rules, Path(tmp)))
    print(f"in-process reload: {elapsed:.2f} s; event-loop lag (1 ms sleeps): {summary(lags)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
