"""Every answer the service gives is counted in the decision metrics and has an audit line:
unreadable CheckRequests, HTTP checks missing what their integration sends, HTTP checks shed
by overload. And the Lambda adapter's audit line says what the gRPC one says."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from authz_service.lambda_authorizer.handler import LambdaAuthorizer
from authz_service.lambda_authorizer.responses import Unauthorized
from authz_service.server import AuthzServer
from tests.integration.grpc.conftest import service_config
from tests.support.authz_config import api_key_hash, write_config
from tests.support.authz_server import running_server
from tests.support.idp import running_idp
from tools.dev_idp import DevIdentityProvider, new_rsa_key

CHECK_METHOD = "/envoy.service.auth.v3.Authorization/Check"
FETCH_TIMEOUT_S = 1.0
LAMBDA_FIXTURES = Path(__file__).parents[2] / "unit" / "lambda_authorizer" / "fixtures"


@pytest.fixture(scope="module")
def idp() -> Iterator[DevIdentityProvider]:
    with running_idp() as provider:
        yield provider


def audited_config(idp: DevIdentityProvider, audit_path: Path, **extra: Any) -> dict[str, Any]:
    config = service_config(idp, watch=False)
    config["telemetry"] = {"metrics": {"listen": None}, "audit": {"output": str(audit_path)}}
    config.update(extra)
    return config


def audit_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def decisions(server: AuthzServer, decision: str, reason: str) -> float:
    labels = {"decision": decision, "reason": reason, "policy": "-"}
    value = server.metrics.registry.get_sample_value("authz_check_decisions_total", labels)
    return value or 0.0


async def test_an_unreadable_check_request_is_denied_counted_and_audited(
    tmp_path: Path, idp: DevIdentityProvider
) -> None:
    audit_path = tmp_path / "audit.jsonl"
    path = write_config(tmp_path / "authz.yaml", audited_config(idp, audit_path))
    async with running_server(path) as server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            # Not a protobuf message: the bytes cannot be parsed as a CheckRequest.
            check = channel.unary_unary(
                CHECK_METHOD, response_deserializer=external_auth_pb2.CheckResponse.FromString
            )
            response = await check(b"\xff\xff\xff\xff", timeout=5)
        counted = decisions(server, "forbidden", "bad_request")

    assert response.denied_response.status.code == 403
    assert counted == 1
    (line,) = audit_lines(audit_path)
    assert line["event"]["reason"] == "bad_request"
    assert line["authz"]["decision"] == "forbidden"
    assert line["authz"]["http_status"] == 403


async def test_an_http_check_missing_what_its_integration_sends_is_counted_and_audited(
    tmp_path: Path, idp: DevIdentityProvider
) -> None:
    audit_path = tmp_path / "audit.jsonl"
    config = audited_config(idp, audit_path, http_check={"listen": "127.0.0.1:0"})
    path = write_config(tmp_path / "authz.yaml", config)
    async with running_server(path) as server:
        assert server.http_check is not None
        url = f"http://127.0.0.1:{server.http_check.port}/nginx"
        async with httpx.AsyncClient(timeout=5) as client:
            # nginx must send X-Original-URI and X-Original-Method: neither is here.
            response = await client.get(url)
        counted = decisions(server, "forbidden", "bad_request")

    assert response.status_code == 403
    assert response.headers["x-authz-reason"] == "bad_request"
    assert counted == 1
    (line,) = audit_lines(audit_path)
    assert line["event"]["reason"] == "bad_request"
    assert line["authz"]["http_status"] == 403


async def test_http_checks_shed_by_overload_are_counted_and_audited(
    tmp_path: Path, idp: DevIdentityProvider
) -> None:
    audit_path = tmp_path / "audit.jsonl"
    config = audited_config(
        idp, audit_path, http_check={"listen": "127.0.0.1:0", "max_concurrent_requests": 1}
    )
    config["jwt_providers"][0]["jwks"] = {
        "fetch_timeout_s": FETCH_TIMEOUT_S,
        "min_refetch_interval_s": 0,
    }
    path = write_config(tmp_path / "authz.yaml", config)
    slow = {"authorization": f"Bearer {idp.mint('alice', key=new_rsa_key('unpublished'))}"}
    async with running_server(path) as server:
        assert server.http_check is not None
        url = f"http://127.0.0.1:{server.http_check.port}/envoy/api/orders"
        in_flight = server.metrics.in_flight.labels("HttpCheck")
        idp.delay_s = 2 * FETCH_TIMEOUT_S
        try:
            async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S + 5) as client:
                busy = asyncio.create_task(client.get(url, headers=slow))
                async with asyncio.timeout(3):  # the slow check holds the only slot
                    while in_flight._value.get() < 1:  # noqa: ASYNC110
                        await asyncio.sleep(0.01)
                shed = [await client.get(url) for _ in range(3)]
                await busy
        finally:
            idp.delay_s = 0
        counted = decisions(server, "unavailable", "overloaded")

    assert [(r.status_code, r.headers["x-authz-reason"]) for r in shed] == [(503, "overloaded")] * 3
    assert counted == 3
    lines = audit_lines(audit_path)
    overloaded = [line for line in lines if line["event"]["reason"] == "overloaded"]
    assert len(overloaded) == 3
    assert {line["authz"]["http_status"] for line in overloaded} == {503}


LOCKOUT_KEY = "good-key-for-lockout-test"


def lockout_config(audit_path: Path) -> dict[str, Any]:
    return {
        "server": {"listen": "127.0.0.1:0", "grace_period_s": 0.1, "watch_config": False},
        "admin": {"listen": None},
        "telemetry": {"metrics": {"listen": None}, "audit": {"output": str(audit_path)}},
        "api_keys": {
            "header": "x-api-key",
            "keys": [{"name": "k", "hash": api_key_hash(LOCKOUT_KEY), "principal": "svc:k"}],
        },
        "policy_selection": {"default": "public"},
        "policies": {"public": {"rules": [{"name": "api", "allow": "authenticated"}]}},
        "rate_limit": {
            "store": "memory",
            "brute_force": {"enabled": True, "max_failures": 1, "window": "1m", "lockout": "1m"},
        },
    }


def lambda_event(source_ip: str, api_key: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((LAMBDA_FIXTURES / "rest_request_v1.json").read_text())
    event["path"], event["httpMethod"] = "/api/orders", "GET"
    event["requestContext"]["identity"]["sourceIp"] = source_ip
    event["headers"]["x-api-key"] = api_key
    event["multiValueHeaders"]["x-api-key"] = [api_key]
    return event


def comparable(line: dict[str, Any]) -> dict[str, Any]:
    """What a line says about the decision (not when, how fast, or which request id)."""
    event = {key: value for key, value in line["event"].items() if key != "duration"}
    return {"event": event, "authz": line["authz"], "user": line.get("user")}


async def test_the_lambda_and_grpc_audit_lines_of_a_lockout_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audit_path = tmp_path / "audit.jsonl"
    path = write_config(tmp_path / "authz.yaml", lockout_config(audit_path))
    # The Lambda: one bad key locks the address out; the good key is then refused.
    authorizer = LambdaAuthorizer(str(path))
    try:
        with pytest.raises(Unauthorized):
            await authorizer.authorize(lambda_event("198.51.100.40", "wrong"))
        capsys.readouterr()
        answer = await authorizer.authorize(lambda_event("198.51.100.40", LOCKOUT_KEY))
    finally:
        await authorizer.close()
    assert answer["context"]["reason"] == "locked_out"
    lambda_line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # The server: the same sequence over gRPC.
    async with (
        running_server(path) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        for key in ("wrong", LOCKOUT_KEY):
            request = external_auth_pb2.CheckRequest()
            http = request.attributes.request.http
            http.method, http.host, http.path = "GET", "api.example.com", "/api/orders"
            http.headers["x-api-key"] = key
            request.attributes.source.address.socket_address.address = "198.51.100.40"
            await stub.Check(request, timeout=5)
    grpc_line = audit_lines(audit_path)[-1]

    assert grpc_line["event"]["reason"] == "locked_out"
    assert comparable(lambda_line) == comparable(grpc_line)
