"""One-time tokens enforced by Check (`jwt_providers[].replay_protection`), in-process server."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import jwt
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.rpc import code_pb2

from tests.integration.grpc.conftest import service_config
from tests.support.authz_config import write_config
from tests.support.authz_server import running_server
from tests.support.idp import running_idp
from tools.dev_idp import DevIdentityProvider


def check_request(path: str, token: str) -> external_auth_pb2.CheckRequest:
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method, http.host, http.path = "GET", "api", path
    http.headers["authorization"] = f"Bearer {token}"
    return request


@pytest.fixture
def idp() -> Iterator[DevIdentityProvider]:
    with running_idp() as provider:
        yield provider


@pytest.fixture
async def stub(
    idp: DevIdentityProvider, tmp_path: Path
) -> AsyncIterator[external_auth_pb2_grpc.AuthorizationStub]:
    config = service_config(idp, watch=False)
    config["jwt_providers"][0]["replay_protection"] = {"enabled": True}
    async with (
        running_server(write_config(tmp_path / "authz.yaml", config)) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        yield external_auth_pb2_grpc.AuthorizationStub(channel)


def reason(response: external_auth_pb2.CheckResponse) -> str:
    return next(
        h.header.value for h in response.denied_response.headers if h.header.key == "x-authz-reason"
    )


async def test_a_one_time_token_is_allowed_once_then_refused_as_replayed(
    stub: external_auth_pb2_grpc.AuthorizationStub, idp: DevIdentityProvider
) -> None:
    token = idp.mint("alice")
    first = await stub.Check(check_request("/api/orders", token))
    second = await stub.Check(check_request("/api/orders", token))
    assert first.status.code == code_pb2.OK
    assert second.status.code == code_pb2.UNAUTHENTICATED
    assert second.denied_response.status.code == 401
    assert reason(second) == "token_replayed"
    assert (await stub.Check(check_request("/api/orders", idp.mint("alice")))).status.code == 0


async def test_a_use_that_rbac_denies_does_not_consume_the_token(
    stub: external_auth_pb2_grpc.AuthorizationStub, idp: DevIdentityProvider
) -> None:
    token = idp.mint("alice")
    denied = await stub.Check(check_request("/admin/users", token))
    assert reason(denied) == "missing_role"
    assert (await stub.Check(check_request("/api/orders", token))).status.code == code_pb2.OK


async def test_a_token_without_jti_is_refused_when_replay_protection_is_on(
    stub: external_auth_pb2_grpc.AuthorizationStub, idp: DevIdentityProvider
) -> None:
    now = int(time.time())
    claims = {"iss": idp.issuer, "aud": idp.audience, "sub": "alice", "iat": now, "exp": now + 60}
    key = idp.signing_key
    token = jwt.encode(claims, key.private_key, "RS256", {"kid": key.kid})
    response = await stub.Check(check_request("/api/orders", token))
    assert response.denied_response.status.code == 401
    assert reason(response) == "missing_claim"
