"""Real Envoys in the RLQS quota mode in front of one authz_service, and a paced load that
records what each Envoy answered, second by second.

Every Envoy runs envoy/envoy.yaml rendered in the `rlqs` mode from the test's service config
(the same render the local stack and docker-compose use); principal buckets are filled from
the `x-user-id` header ext_authz sets, so the whole chain (token -> Check -> identity header
-> bucket -> share) is exercised.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.e2e.conftest import test_config, trusting
from tools.demo_upstream import start_in_thread
from tools.dev_cert import generate as generate_dev_certs
from tools.dev_idp import DevIdentityProvider
from tools.processes import Process, free_port, start_authz, start_envoy

LIMIT = 20  # per second, per user bucket, for the whole fleet
TTL_S = 15  # quota_service.assignment_ttl


def quota_config(config: dict[str, Any], redis_url: str | None = None) -> None:
    """One limit per user (LIMIT a second), through the RLQS filter only."""
    rate_limit = config["rate_limit"]
    rate_limit.pop("config_dir", None)
    rate_limit["domains"] = [
        {
            "domain": "gateway",
            "descriptors": [
                {
                    "key": "user",
                    "rate_limit": {
                        "unit": "second",
                        "requests_per_unit": LIMIT,
                        "name": "per-user",
                    },
                }
            ],
        }
    ]
    if redis_url is not None:
        rate_limit["store"] = "redis"
        rate_limit["redis"] = {"url": redis_url, "timeout_ms": 200}
    config["quota_service"] = {
        "domain": "gateway",
        "descriptors": [{"entries": [{"key": "user", "source": "principal"}]}],
        "assignment_ttl": f"{TTL_S}s",
    }


@dataclass
class QuotaGateway:
    workdir: Path
    idp: DevIdentityProvider
    config_path: Path
    authz_port: int
    admin_port: int
    metrics_port: int
    tls_dir: Path
    upstream_port: int
    authz: Process
    envoys: dict[str, tuple[Process, str]] = field(default_factory=dict)

    def start_envoy(self, name: str) -> str:
        public = free_port()
        workdir = self.workdir / f"envoy-{name}"
        workdir.mkdir(exist_ok=True)
        values = {
            "PUBLIC_PORT": public,
            "AUTHZ_PORT": self.authz_port,
            "UPSTREAM_PORT": self.upstream_port,
            "UPSTREAM_V2_PORT": self.upstream_port,
            "TLS_DIR": self.tls_dir,
        }
        process = start_envoy(values, workdir, [public], "rlqs", self.config_path)
        url = f"https://127.0.0.1:{public}/api/orders"
        self.envoys[name] = (process, url)
        return url

    def stop_envoy(self, name: str) -> None:
        self.envoys.pop(name)[0].stop()

    def restart_authz(self) -> None:
        self.authz.stop()
        self.authz = start_authz(self.config_path, self.authz_port, self.workdir)

    def url(self, name: str) -> str:
        return self.envoys[name][1]

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=5.0, verify=trusting(self.tls_dir / "ca.crt"))

    def logs(self) -> str:
        parts = [f"--- authz ---\n{self.authz.log()[-3000:]}"]
        parts += [f"--- envoy {n} ---\n{p.log()[-3000:]}" for n, (p, _) in self.envoys.items()]
        return "\n".join(parts)


@contextlib.contextmanager
def running_quota_gateway(
    workdir: Path,
    envoys: tuple[str, ...] = ("a", "b"),
    redis_url: str | None = None,
    otlp_port: int | None = None,
) -> Iterator[QuotaGateway]:
    idp = DevIdentityProvider()
    idp.start()
    upstream = start_in_thread()
    authz_port, admin_port, metrics_port = free_port(), free_port(), free_port()
    config_path = test_config(idp.jwks_uri, authz_port, workdir / "authz.yaml")
    config = yaml.safe_load(config_path.read_text())
    quota_config(config, redis_url)
    config["admin"] = {"listen": f"127.0.0.1:{admin_port}"}
    config["telemetry"]["metrics"] = {"listen": f"127.0.0.1:{metrics_port}"}
    if otlp_port is not None:
        endpoint = f"http://127.0.0.1:{otlp_port}"
        config["telemetry"]["tracing"] = {"exporter": "otlp_grpc", "endpoint": endpoint}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    gateway = QuotaGateway(
        workdir,
        idp,
        config_path,
        authz_port,
        admin_port,
        metrics_port,
        generate_dev_certs(workdir / "tls"),
        upstream.server_address[1],
        start_authz(config_path, authz_port, workdir),
    )
    try:
        for name in envoys:
            gateway.start_envoy(name)
        yield gateway
    finally:
        for process, _ in gateway.envoys.values():
            process.stop()
        gateway.authz.stop()
        upstream.shutdown()
        upstream.server_close()
        idp.stop()


@dataclass
class Answers:
    """(seconds since the load began, HTTP status) of every request, per Envoy."""

    started: float
    by_envoy: dict[str, list[tuple[float, int]]] = field(default_factory=dict)

    def allowed(self, envoy: str | None = None, since: float = 0.0, until: float = 1e9) -> int:
        names = [envoy] if envoy else list(self.by_envoy)
        return sum(
            1
            for name in names
            for at, status in self.by_envoy.get(name, [])
            if status == 200 and since <= at < until
        )

    def statuses(self) -> set[int]:
        return {status for answers in self.by_envoy.values() for _, status in answers}


class PacedLoad:
    """`rate` requests a second per Envoy (over `workers` connections), for as long as each
    Envoy is being driven; answers recorded with their time."""

    def __init__(self, gateway: QuotaGateway, token: str, rate: float = 60, workers: int = 3):
        self.gateway, self.token = gateway, token
        self.interval = workers / rate
        self.workers = workers
        self.answers = Answers(time.monotonic())
        self._tasks: dict[str, list[asyncio.Task[None]]] = {}

    def now(self) -> float:
        return time.monotonic() - self.answers.started

    def drive(self, envoy: str) -> None:
        url = self.gateway.url(envoy)
        record = self.answers.by_envoy.setdefault(envoy, [])
        self._tasks[envoy] = [
            asyncio.create_task(self._worker(url, record)) for _ in range(self.workers)
        ]

    async def stop(self, envoy: str) -> None:
        tasks = self._tasks.pop(envoy, [])
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def stop_all(self) -> None:
        for envoy in list(self._tasks):
            await self.stop(envoy)

    async def _worker(self, url: str, record: list[tuple[float, int]]) -> None:
        headers = {"authorization": f"Bearer {self.token}"}
        async with self.gateway.client() as client:
            next_at = time.monotonic()
            while True:
                try:
                    status = (await client.get(url, headers=headers)).status_code
                except httpx.TransportError:
                    status = 0  # the Envoy went away (a test stopped it)
                record.append((self.now(), status))
                next_at += self.interval
                # Pacing the offered load (3x the limit), not waiting for a condition.
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def until(self, seconds: float) -> None:
        """Let the load run until `seconds` after it began."""
        await asyncio.sleep(max(0.0, seconds - self.now()))


async def wait_for(
    condition: Callable[[], bool], within_s: float, what: str, poll_s: float = 0.25
) -> float:
    """Poll an outside condition (Envoy's enforcement) until it holds; the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within_s:
            raise AssertionError(f"{what}: not within {within_s} s")
        await asyncio.sleep(poll_s)
    return time.monotonic() - started
