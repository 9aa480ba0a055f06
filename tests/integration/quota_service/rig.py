"""The quota service on a real grpc.aio server (port 0) and Envoy-like RLQS streams to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.service.rate_limit_quota.v3 import rlqs_pb2, rlqs_pb2_grpc

from authz_service.grpc.quota_servicer import add_quota_servicer
from authz_service.ratelimit.rules import compile_rules, parse_domain_document
from authz_service.ratelimit.usage_store import UsageStore
from authz_service.schema import QuotaServiceSettings
from authz_service.services.quota_service import QuotaConfig, QuotaShareService
from tests.support.idp import wait_until

LIMITS = """
domain: gateway
descriptors:
  - key: user
    rate_limit: {unit: second, requests_per_unit: 100, name: per-user}
  - key: tier
    value: gold
    descriptors:
      - key: user
        rate_limit: {unit: minute, requests_per_unit: 600, name: gold-per-user}
  - key: endpoint
    value: health
    rate_limit: {unlimited: true}
  - key: endpoint
    value: closed
    rate_limit: {unit: second, requests_per_unit: 0, name: closed}
  - key: path
    rate_limit: {unit: second, requests_per_unit: 1000000}
"""
SETTINGS = QuotaServiceSettings.model_validate(
    {
        "domain": "gateway",
        "descriptors": [
            {"entries": [{"key": "user", "header": "x-user-id"}]},
            {
                "entries": [
                    {"key": "tier", "header": "x-user-tier"},
                    {"key": "user", "header": "x-user-id"},
                ]
            },
            {"entries": [{"key": "endpoint", "value": "health"}]},
        ],
        "assignment_ttl": 10,
    }
)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def report(*buckets: tuple[dict[str, str], int, int, int], domain: str = "gateway") -> Any:
    """A usage report: (bucket id, allowed, denied, seconds elapsed) per bucket."""
    message = rlqs_pb2.RateLimitQuotaUsageReports(domain=domain)
    for bucket, allowed, denied, elapsed in buckets:
        usage = message.bucket_quota_usages.add()
        for key, value in bucket.items():
            usage.bucket_id.bucket[key] = value
        usage.num_requests_allowed = allowed
        usage.num_requests_denied = denied
        usage.time_elapsed.seconds = elapsed
    return message


@dataclass
class FakeEnvoy:
    """One RLQS stream, as Envoy's filter opens it."""

    call: Any
    received: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    reader: asyncio.Task[None] | None = None

    async def send(self, message: Any) -> None:
        await self.call.write(message)

    async def next(self) -> Any:
        async with asyncio.timeout(5.0):
            return await self.received.get()

    async def ask(self, message: Any) -> Any:
        await self.send(message)
        return await self.next()

    def actions(self, response: Any) -> dict[tuple[tuple[str, str], ...], Any]:
        return {tuple(sorted(a.bucket_id.bucket.items())): a for a in response.bucket_action}

    async def close(self) -> None:
        await self.call.done_writing()


@dataclass
class Rig:
    service: QuotaShareService
    channel: grpc.aio.Channel
    clock: Clock
    config: list[QuotaConfig]

    async def envoy(self) -> FakeEnvoy:
        stub = rlqs_pb2_grpc.RateLimitQuotaServiceStub(self.channel)
        envoy = FakeEnvoy(stub.StreamRateLimitQuotas())

        async def read() -> None:
            with contextlib.suppress(grpc.aio.AioRpcError):  # the status is read by the test
                async for message in envoy.call:
                    envoy.received.put_nowait(message)

        envoy.reader = asyncio.create_task(read())
        return envoy


@contextlib.asynccontextmanager
async def running_rig(
    store: UsageStore | None = None,
    settings: QuotaServiceSettings | None = SETTINGS,
    limits: str = LIMITS,
    edit: Callable[[QuotaShareService], None] | None = None,
    store_timeout_s: float = 1.0,
) -> AsyncIterator[Rig]:
    from authz_service.ratelimit.usage_store import MemoryUsageStore

    clock = Clock()
    rules = compile_rules([parse_domain_document(limits, "limits.yaml")])
    config = [QuotaConfig(rules, settings)]
    service = QuotaShareService(
        lambda: config[0], store or MemoryUsageStore(), clock=clock, store_timeout_s=store_timeout_s
    )
    if edit is not None:
        edit(service)
    server = grpc.aio.server()
    add_quota_servicer(server, service)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Rig(service, channel, clock, config)
    finally:
        service.end_streams()
        # Each stream's end writes to the store: let those finish before the store closes.
        await wait_until(lambda: service.open_streams == 0)
        await channel.close()
        await server.stop(0)
        await service.close()


def token_bucket(action: Any) -> tuple[int, int, int]:
    bucket = action.quota_assignment_action.rate_limit_strategy.token_bucket
    return bucket.max_tokens, bucket.tokens_per_fill.value, bucket.fill_interval.seconds


def blanket(action: Any) -> str:
    strategy = action.quota_assignment_action.rate_limit_strategy
    return (
        strategy.BlanketRule.Name(strategy.blanket_rule)
        if strategy.HasField("blanket_rule")
        else ""
    )


def keys(*pairs: Sequence[str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in pairs))
