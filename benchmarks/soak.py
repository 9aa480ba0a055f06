"""A bounded soak through the real Envoy at a steady rate: errors, RSS, fds, asyncio tasks.

    python -m benchmarks.soak                      # 3 minutes at 150 requests/s
    python -m benchmarks.soak --minutes 10 --rate 200 --redis --json soak.json

The stack is the local one (tools/processes.py): Envoy with envoy/envoy.yaml -> authz_service
(config/local.yaml, Redis when --redis) -> the demo upstream, a dev IdP serving the JWKS.
Rate limits are the shipped descriptors with limits no soak reaches, so every request still
costs a ShouldRateLimit and a store round trip. The traffic mixes cached tokens, fresh
tokens (a signature check each), anonymous, 401 and 403 requests; each request's expected
status is known, and anything else counts as an error.

The service's RSS, open file descriptors (/proc/PID/fd) and, when its metrics expose
`authz_asyncio_tasks`, its asyncio task count are sampled every `--sample-s` seconds after a
warm-up. Leaks show as growth from the first sample to the last.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from benchmarks.procstat import rss_bytes
from tests.e2e.conftest import trusting
from tools.demo_upstream import start_in_thread
from tools.dev_cert import generate as generate_dev_certs
from tools.dev_idp import DevIdentityProvider
from tools.processes import (
    REPO_ROOT,
    Process,
    free_port,
    start_authz,
    start_envoy,
    start_redis,
    write_service_config,
)

HIGH = 1_000_000_000  # per minute: counted, never reached


@dataclass
class Sample:
    at_s: float
    rss_mb: float
    open_fds: int
    asyncio_tasks: int | None


@dataclass
class SoakReport:
    duration_s: float
    target_rate: float
    requests: int
    errors: int
    statuses: dict[str, int]
    error_examples: list[str]
    samples: list[Sample] = field(default_factory=list)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 1.0

    @property
    def achieved_rate(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    def growth(self, name: str) -> float | None:
        values = [getattr(s, name) for s in self.samples if getattr(s, name) is not None]
        return values[-1] - values[0] if len(values) >= 2 else None

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "error_rate": self.error_rate,
            "achieved_rate": self.achieved_rate,
            "growth": {n: self.growth(n) for n in ("rss_mb", "open_fds", "asyncio_tasks")},
        }

    def text(self) -> str:
        first, last = self.samples[0], self.samples[-1]
        peak_rss = max(s.rss_mb for s in self.samples)
        tasks = (
            f"{first.asyncio_tasks} -> {last.asyncio_tasks}"
            if first.asyncio_tasks is not None
            else "n/a (the service does not export authz_asyncio_tasks)"
        )
        return "\n".join(
            [
                f"soak: {self.duration_s:.0f} s at {self.target_rate:.0f}/s target, "
                f"{self.achieved_rate:.1f}/s achieved, {self.requests} requests",
                f"errors: {self.errors} ({self.error_rate:.4%}) {self.error_examples[:3]}",
                f"statuses: {dict(sorted(self.statuses.items()))}",
                f"service RSS: {first.rss_mb:.1f} MB -> {last.rss_mb:.1f} MB "
                f"(peak {peak_rss:.1f} MB)",
                f"open fds: {first.open_fds} -> {last.open_fds} "
                f"(max {max(s.open_fds for s in self.samples)})",
                f"asyncio tasks: {tasks}",
                f"samples: {len(self.samples)}",
            ]
        )


@dataclass
class SoakStack:
    public_url: str
    ca_file: Path
    authz: Process
    metrics_url: str
    idp: DevIdentityProvider


def _config(idp: DevIdentityProvider, workdir: Path, port: int, metrics: int, redis: str | None):
    path = write_service_config(
        REPO_ROOT / "config" / "local.yaml",
        workdir / "authz.yaml",
        listen_port=port,
        jwks_uri=idp.jwks_uri,
        metrics_port=metrics,
    )
    config = yaml.safe_load(path.read_text())
    rate_limit = config["rate_limit"]
    rate_limit.pop("config_dir", None)
    rate_limit["brute_force"] = {"enabled": False}
    high = {"unit": "minute", "requests_per_unit": HIGH}
    rate_limit["domains"] = [
        {
            "domain": "gateway",
            "descriptors": [
                {"key": "remote_address", "rate_limit": high},
                {"key": "user", "rate_limit": high},
                {"key": "endpoint", "rate_limit": high},
            ],
        }
    ]
    if redis is not None:
        rate_limit["store"] = "redis"
        rate_limit["redis"] = {"url": redis, "key_prefix": "soak:"}
    config["telemetry"]["audit"] = {"enabled": False}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@contextmanager
def soak_stack(workdir: Path, *, redis: bool = False) -> Iterator[SoakStack]:
    idp = DevIdentityProvider()
    idp.start()
    upstream, upstream_v2 = start_in_thread(), start_in_thread(version="v2")
    processes: list[Process] = []
    try:
        redis_url = None
        if redis:
            redis_port = free_port()
            processes.append(start_redis(redis_port, workdir))
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
        port, metrics, public = free_port(), free_port(), free_port()
        config = _config(idp, workdir, port, metrics, redis_url)
        authz = start_authz(config, port, workdir)
        processes.append(authz)
        tls_dir = generate_dev_certs(workdir / "tls")
        values = {
            "PUBLIC_PORT": public,
            "AUTHZ_PORT": port,
            "UPSTREAM_PORT": upstream.server_address[1],
            "UPSTREAM_V2_PORT": upstream_v2.server_address[1],
            "TLS_DIR": tls_dir,
        }
        processes.append(start_envoy(values, workdir, [public]))
        yield SoakStack(
            f"https://127.0.0.1:{public}",
            tls_dir / "ca.crt",
            authz,
            f"http://127.0.0.1:{metrics}/metrics",
            idp,
        )
    finally:
        for process in reversed(processes):
            process.stop()
        for server in (upstream, upstream_v2):
            server.shutdown()
            server.server_close()
        idp.stop()


def sample(stack: SoakStack, started: float) -> Sample:
    pid = stack.authz.popen.pid
    tasks = None
    try:
        text = httpx.get(stack.metrics_url, timeout=5).text
        found = re.search(r"^authz_asyncio_tasks(?:\{[^}]*\})? ([0-9.e+]+)$", text, re.M)
        tasks = int(float(found.group(1))) if found else None
    except httpx.HTTPError:
        pass
    return Sample(
        at_s=round(time.monotonic() - started, 1),
        rss_mb=rss_bytes(pid) / 2**20,
        open_fds=len(os.listdir(f"/proc/{pid}/fd")),
        asyncio_tasks=tasks,
    )


class Traffic:
    """Requests with known expected statuses; a fresh token now and then (a real verify)."""

    def __init__(self, idp: DevIdentityProvider, users: int = 50, fresh_every: int = 20) -> None:
        self._idp = idp
        self._fresh_every = fresh_every
        self._tokens = [
            idp.mint(f"user{i}", roles=["reader"], lifetime_s=3600) for i in range(users)
        ]
        self._count = 0
        self._lock = threading.Lock()

    def next(self) -> tuple[str, dict[str, str], int]:
        with self._lock:
            self._count += 1
            n = self._count
        token = self._tokens[n % len(self._tokens)]
        kind = n % 20
        if self._fresh_every and n % self._fresh_every == 0:
            # A never-seen token: a full signature check, and one more entry in the bounded
            # verified-token and allow-response caches (RSS grows until they are full).
            fresh = self._idp.mint(f"fresh{n}", roles=["reader"], lifetime_s=600)
            return "/api/orders", {"authorization": f"Bearer {fresh}"}, 200
        if kind == 1:
            return "/api/orders", {}, 401
        if kind == 2:
            return "/admin/users", {"authorization": f"Bearer {token}"}, 403
        if kind == 3:
            return "/public/docs", {}, 200
        if kind == 4:
            return "/api/orders", {"authorization": "Bearer not.a.token"}, 401
        return f"/api/orders/{n % 97}", {"authorization": f"Bearer {token}"}, 200


def run_soak(
    duration_s: float,
    rate: float,
    *,
    workdir: Path,
    redis: bool = False,
    sample_s: float = 10.0,
    warmup_s: float = 5.0,
    threads: int = 8,
    fresh_every: int = 20,
) -> SoakReport:
    with soak_stack(workdir, redis=redis) as stack:
        traffic = Traffic(stack.idp, fresh_every=fresh_every)
        statuses: Counter[str] = Counter()
        errors: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()
        interval = threads / rate  # each thread keeps its own share of the schedule

        def worker(offset: float) -> None:
            with httpx.Client(timeout=5, verify=trusting(stack.ca_file)) as client:
                next_at = time.monotonic() + offset
                while not stop.is_set():
                    path, headers, expected = traffic.next()
                    try:
                        status = client.get(stack.public_url + path, headers=headers).status_code
                        outcome = str(status)
                    except httpx.HTTPError as error:
                        status, outcome = -1, type(error).__name__
                    with lock:
                        statuses[outcome] += 1
                        if status != expected:
                            errors.append(f"{path} expected {expected} got {outcome}")
                    next_at += interval
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    elif delay < -1.0:  # fell behind by a second: do not burst to catch up
                        next_at = time.monotonic()

        pool = [
            threading.Thread(target=worker, args=(i * interval / threads,), daemon=True)
            for i in range(threads)
        ]
        for thread in pool:
            thread.start()
        time.sleep(warmup_s)
        with lock:
            statuses.clear()
            errors.clear()
        started = time.monotonic()
        samples = [sample(stack, started)]
        while (elapsed := time.monotonic() - started) < duration_s:
            time.sleep(min(sample_s, duration_s - elapsed))
            samples.append(sample(stack, started))
        with lock:
            requests = sum(statuses.values())
            report = SoakReport(
                duration_s=time.monotonic() - started,
                target_rate=rate,
                requests=requests,
                errors=len(errors),
                statuses=dict(statuses),
                error_examples=errors[:10],
                samples=samples,
            )
        stop.set()
        for thread in pool:
            thread.join(10)
        if stack.authz.popen.poll() is not None:
            raise RuntimeError(f"authz_service exited during the soak:\n{stack.authz.log()}")
        return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=150.0, help="requests per second")
    parser.add_argument("--redis", action="store_true", help="Redis quota store (else memory)")
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument(
        "--fresh-every", type=int, default=20, help="every Nth request a new token (0: never)"
    )
    parser.add_argument("--json", type=Path, help="also write the report as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
        report = run_soak(
            args.minutes * 60,
            args.rate,
            workdir=Path(workdir),
            redis=args.redis,
            sample_s=args.sample_s,
            fresh_every=args.fresh_every,
        )
    print(report.text())
    if args.json is not None:
        args.json.write_text(json.dumps(report.as_dict(), indent=2))
    return 0 if report.errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
