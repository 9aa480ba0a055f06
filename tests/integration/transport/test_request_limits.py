"""Oversized check requests are denied before their header map is built, on both transports.

A CheckRequest with thousands of headers (megabytes, under gRPC's message limit) used to be
turned into a dict and matched like any other: ~30 ms of CPU each, gigabytes at 128 in
flight. Now the head is measured first and an oversized one is a 431 `request_too_large`
deny, counted like every decision; a message past the receive limit never reaches us.
"""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import pytest
from google.rpc import code_pb2

from authz_service.server import AuthzServer
from tests.integration.grpc.conftest import service_config
from tests.integration.grpc.test_authorization_server import check, check_request, denied_headers
from tests.support.authz_server import Start
from tools.dev_idp import DevIdentityProvider


def limited_config(idp: DevIdentityProvider, **limits: int) -> dict[str, Any]:
    config = service_config(idp, watch=False)
    config["http_check"] = {"listen": "127.0.0.1:0"}
    if limits:
        config["request_limits"] = limits
    return config


def decisions(server: AuthzServer, reason: str) -> float:
    value = server.metrics.registry.get_sample_value(
        "authz_check_decisions_total", {"decision": "forbidden", "reason": reason, "policy": "-"}
    )
    return value or 0.0


async def test_a_check_request_with_ten_thousand_headers_is_denied_as_too_large(
    start: Start, idp: DevIdentityProvider
) -> None:
    server = await start(limited_config(idp))
    token = idp.mint("alice")
    headers = {f"x-filler-{i}": "v" * 20 for i in range(10_000)}
    headers["authorization"] = f"Bearer {token}"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        response = await check(channel, check_request("/api/orders", headers))
        within = await check(
            channel, check_request("/api/orders", {"authorization": f"Bearer {token}"})
        )
    assert response.status.code == code_pb2.PERMISSION_DENIED
    assert response.denied_response.status.code == 431
    assert denied_headers(response)["x-authz-reason"] == "request_too_large"
    assert decisions(server, "request_too_large") == 1
    assert within.status.code == code_pb2.OK


async def test_a_check_request_whose_header_bytes_exceed_the_limit_is_denied(
    start: Start, idp: DevIdentityProvider
) -> None:
    server = await start(limited_config(idp, max_headers=50, max_header_bytes=16_384))
    token = idp.mint("alice")
    few_but_large = {"authorization": f"Bearer {token}", "x-big": "b" * 20_000}
    many = {"authorization": f"Bearer {token}", **{f"x-h{i}": "1" for i in range(50)}}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        large = await check(channel, check_request("/api/orders", few_but_large))
        counted = await check(channel, check_request("/api/orders", many))
    assert denied_headers(large)["x-authz-reason"] == "request_too_large"
    assert denied_headers(counted)["x-authz-reason"] == "request_too_large"
    assert large.denied_response.status.code == counted.denied_response.status.code == 431


async def test_a_check_request_past_the_receive_limit_is_refused_by_grpc(
    start: Start, idp: DevIdentityProvider
) -> None:
    config = limited_config(idp)
    config["server"]["max_receive_message_bytes"] = 64 * 1024
    server = await start(config)
    request = check_request("/api/orders", {"x-big": "b" * 100_000})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await check(channel, request)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_default_receive_limit_is_well_under_grpcs_four_mebibytes(
    idp: DevIdentityProvider,
) -> None:
    from authz_service.schema import Config

    config = Config.model_validate(service_config(idp))
    assert config.server.max_receive_message_bytes <= 1024 * 1024
    assert config.server.max_concurrent_rpcs is not None


async def test_an_http_check_with_too_many_headers_is_denied_431(
    start: Start, idp: DevIdentityProvider
) -> None:
    server = await start(limited_config(idp, max_headers=40, max_header_bytes=16_384))
    assert server.http_check is not None
    token = idp.mint("alice")
    base = {"authorization": f"Bearer {token}"}
    url = f"http://127.0.0.1:{server.http_check.port}/envoy/api/orders"
    async with httpx.AsyncClient(timeout=5.0) as client:
        many = await client.get(url, headers={**base, **{f"x-h{i}": "1" for i in range(45)}})
        large = await client.get(url, headers={**base, "x-big": "b" * 20_000})
        within = await client.get(url, headers=base)
    assert many.status_code == 431
    assert many.headers["x-authz-reason"] == "request_too_large"
    assert large.status_code == 431
    assert large.headers["x-authz-reason"] == "request_too_large"
    assert within.status_code == 200
    assert decisions(server, "request_too_large") == 2
