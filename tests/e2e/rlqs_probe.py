"""A scripted RLQS server and a one-filter Envoy: the instrument that pins what Envoy 1.40's
rate_limit_quota filter really does (tests/e2e/test_envoy_rlqs_sharp_edges.py).

The server answers each bucket of each usage report with whatever `answer(bucket)` returns
(a RateLimitQuotaResponse.BucketAction as a dict, or None for no answer), and records every
report. Envoy has one listener whose requests go through one rate_limit_quota filter and
get a direct 200; bucket settings start from what `authz-service rlqs-filter` renders.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
from envoy.service.rate_limit_quota.v3 import rlqs_pb2, rlqs_pb2_grpc
from google.protobuf import json_format

from tools.processes import Process, envoy_binary, free_port, spawn

Answer = Callable[[dict[str, str]], dict[str, Any] | None]
HEADER_INPUT = "type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput"


def token_bucket(tokens: int, fill: str = "1s", ttl: str | None = "30s") -> dict[str, Any]:
    action: dict[str, Any] = {
        "rateLimitStrategy": {
            "tokenBucket": {"maxTokens": tokens, "tokensPerFill": tokens, "fillInterval": fill}
        }
    }
    if ttl is not None:
        action["assignmentTimeToLive"] = ttl
    return {"quotaAssignmentAction": action}


@dataclass
class Report:
    at: float
    stream: int
    buckets: list[dict[str, Any]]  # bucketQuotaUsages as JSON


@dataclass
class ScriptedRlqs(rlqs_pb2_grpc.RateLimitQuotaServiceServicer):  # type: ignore[misc]
    answer: Answer = lambda bucket: None
    reports: list[Report] = field(default_factory=list)
    streams: int = 0
    # Extra actions sent with every answer (e.g. for buckets Envoy never reported).
    extra: list[dict[str, Any]] = field(default_factory=list)

    async def StreamRateLimitQuotas(self, requests: Any, context: Any) -> AsyncIterator[Any]:
        self.streams += 1
        stream = self.streams
        async for request in requests:
            usages = json_format.MessageToDict(request).get("bucketQuotaUsages", [])
            self.reports.append(Report(time.monotonic(), stream, usages))
            response = rlqs_pb2.RateLimitQuotaResponse()
            for usage in request.bucket_quota_usages:
                action = self.answer(dict(usage.bucket_id.bucket))
                if action is not None:
                    item = response.bucket_action.add()
                    item.bucket_id.CopyFrom(usage.bucket_id)
                    json_format.ParseDict(action, item)
            for extra in self.extra:
                json_format.ParseDict(extra, response.bucket_action.add())
            if response.bucket_action:
                yield response

    async def next_report(self, within_s: float = 8.0) -> Report:
        count = len(self.reports)
        async with asyncio.timeout(within_s):
            while len(self.reports) == count:  # noqa: ASYNC110 (Envoy reports on its timer)
                await asyncio.sleep(0.02)
        return self.reports[-1]


def bucket_settings(**overrides: Any) -> dict[str, Any]:
    """Bucket `{user: <x-user header>}`, ALLOW_ALL until assigned, then `overrides`."""
    settings: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rate_limit_quota.v3."
        "RateLimitQuotaBucketSettings",
        "bucket_id_builder": {
            "bucket_id_builder": {
                "user": {
                    "custom_value": {
                        "name": "user",
                        "typed_config": {"@type": HEADER_INPUT, "header_name": "x-user"},
                    }
                }
            }
        },
        "reporting_interval": "5s",
        "no_assignment_behavior": {"fallback_rate_limit": {"blanket_rule": "ALLOW_ALL"}},
    }
    settings.update(overrides)
    return settings


def bootstrap(
    admin: int,
    listen: int,
    rlqs: int,
    settings: dict[str, Any],
    before: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    quota_filter = {
        "name": "envoy.filters.http.rate_limit_quota",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rate_limit_quota.v3."
            "RateLimitQuotaFilterConfig",
            "rlqs_server": {"envoy_grpc": {"cluster_name": "rlqs"}},
            "domain": "probe",
            # Every request is in a bucket (a request without x-user too: its id then fails).
            "bucket_matchers": {"on_no_match": {"action": {"name": "b", "typed_config": settings}}},
        },
    }
    router = {
        "name": "envoy.filters.http.router",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
        },
    }
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager."
        "v3.HttpConnectionManager",
        "stat_prefix": "probe",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 200}}],
                }
            ]
        },
        "http_filters": [*(before or []), quota_filter, router],
    }
    h2 = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}},
        }
    }
    endpoint = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": rlqs}}}
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "probe",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": manager,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": "rlqs",
                    "type": "STATIC",
                    "connect_timeout": "0.5s",
                    "typed_extension_protocol_options": h2,
                    "load_assignment": {
                        "cluster_name": "rlqs",
                        "endpoints": [{"lb_endpoints": [{"endpoint": endpoint}]}],
                    },
                }
            ],
        },
    }


@dataclass
class Probe:
    server: ScriptedRlqs
    envoy: Process
    url: str
    admin_url: str

    async def send(self, count: int, user: str | None = "alice") -> dict[int, int]:
        """`count` requests one after another: how many got each status (0: no answer)."""
        statuses: dict[int, int] = {}
        headers = {"x-user": user} if user is not None else {}
        async with httpx.AsyncClient(timeout=5.0) as client:
            for _ in range(count):
                try:
                    status = (await client.get(self.url, headers=headers)).status_code
                except httpx.TransportError:
                    status = 0
                statuses[status] = statuses.get(status, 0) + 1
        return statuses

    async def until_allowed(self, user: str = "alice", within_s: float = 5.0) -> int:
        """Send until a request is allowed (with `no_assignment_behavior: DENY_ALL`, the sign
        that an assignment is in force); the denied ones before it."""
        denied = 0
        async with asyncio.timeout(within_s):
            while (await self.send(1, user)).get(200, 0) == 0:
                denied += 1
        return denied

    async def stats(self) -> str:
        async with httpx.AsyncClient(timeout=5.0) as client:
            return (await client.get(self.admin_url + "/stats")).text


DENY_UNTIL_ASSIGNED = {
    "no_assignment_behavior": {"fallback_rate_limit": {"blanket_rule": "DENY_ALL"}}
}


@contextlib.asynccontextmanager
async def probing(
    workdir: Path,
    settings: dict[str, Any],
    answer: Answer,
    before: list[dict[str, Any]] | None = None,
) -> AsyncIterator[Probe]:
    scripted = ScriptedRlqs(answer)
    server = grpc.aio.server()
    rlqs_pb2_grpc.add_RateLimitQuotaServiceServicer_to_server(scripted, server)
    rlqs_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    admin, listen = free_port(), free_port()
    config_path = workdir / "probe.json"
    config_path.write_text(json.dumps(bootstrap(admin, listen, rlqs_port, settings, before)))
    binary = envoy_binary()
    assert binary is not None
    envoy = spawn(
        "envoy-probe",
        [binary, "-c", str(config_path), "--concurrency", "2", "--disable-hot-restart",
         "--log-level", "warn"],
        workdir,
    )  # fmt: skip
    try:
        await _listening(listen, envoy)
        yield Probe(scripted, envoy, f"http://127.0.0.1:{listen}/", f"http://127.0.0.1:{admin}")
    finally:
        envoy.stop()
        await server.stop(0)


async def _listening(port: int, envoy: Process) -> None:
    async with asyncio.timeout(20.0):
        while True:
            if envoy.popen.poll() is not None:
                raise RuntimeError(f"envoy exited: {envoy.log()[-2000:]}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return
