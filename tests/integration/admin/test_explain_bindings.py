"""The admin API's Explain names the sender-constraint checks a bound token needed (DPoP proof,
certificate binding), whether the request satisfied each and why not, with no proof, token or
thumbprint in what it says."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from authz_service.admin.v1 import admin_pb2, admin_pb2_grpc
from tests.integration.admin.test_admin_api import AUTHORIZED, admin_config
from tests.support.authz_config import write_config
from tests.support.authz_server import running_server
from tests.support.dpop_proofs import DpopClient
from tests.support.idp import running_idp
from tools.dev_idp import DevIdentityProvider

HOST = "api.example.com"
PATH = "/api/items"
URL = f"https://{HOST}{PATH}"


@pytest.fixture
def idp() -> Iterator[DevIdentityProvider]:
    with running_idp() as provider:
        yield provider


@pytest.fixture
async def admin(tmp_path: Path, idp: DevIdentityProvider) -> AsyncIterator[Any]:
    config = admin_config(idp)
    provider = config["jwt_providers"][0]
    provider["token_sources"] = [
        {"header": "authorization", "prefix": "Bearer "},
        {"header": "authorization", "prefix": "DPoP "},
    ]
    provider["dpop"] = {"algorithms": ["ES256"]}
    path = write_config(tmp_path / "authz.yaml", config)
    async with (
        running_server(path) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.admin_port}") as channel,
    ):
        yield admin_pb2_grpc.AdminServiceStub(channel)


async def explain(admin: Any, token: str, proof: str) -> Any:
    headers = [
        admin_pb2.Header(name="authorization", value=f"DPoP {token}"),
        admin_pb2.Header(name="dpop", value=proof),
    ]
    request = admin_pb2.ExplainRequest(method="GET", host=HOST, path=PATH, headers=headers)
    return await admin.Explain(request, metadata=AUTHORIZED, timeout=5)


async def test_explain_reports_a_verified_dpop_binding(
    admin: Any, idp: DevIdentityProvider
) -> None:
    client = DpopClient()
    token = idp.mint("alice", extra_claims={"cnf": {"jkt": client.jkt}})
    response = await explain(admin, token, client.proof("GET", URL, token))
    assert response.decision == "allow"
    assert [(b.binding, b.verified, b.reason, b.why) for b in response.bindings] == [
        ("dpop", True, "", "proof verified, jti unused")
    ]


async def test_explain_says_which_dpop_check_failed_and_never_the_proof(
    admin: Any, idp: DevIdentityProvider
) -> None:
    client = DpopClient()
    token = idp.mint("alice", extra_claims={"cnf": {"jkt": client.jkt}})
    proof = DpopClient().proof("GET", URL, token)  # signed by another key
    response = await explain(admin, token, proof)
    assert (response.decision, response.reason) == ("unauthenticated", "invalid_dpop_proof")
    (binding,) = response.bindings
    assert (binding.binding, binding.verified, binding.reason) == (
        "dpop",
        False,
        "invalid_dpop_proof",
    )
    assert binding.why == "proof key is not the key the token is bound to"
    assert client.jkt not in str(response) and proof not in str(response)


async def test_explain_reports_a_certificate_bound_token_without_a_certificate(
    admin: Any, idp: DevIdentityProvider
) -> None:
    token = idp.mint("alice", extra_claims={"cnf": {"x5t#S256": "bG9uZ2VyLXRoYW4tYS10aHVtYg"}})
    request = admin_pb2.ExplainRequest(method="GET", host=HOST, path=PATH, token=token)
    response = await admin.Explain(request, metadata=AUTHORIZED, timeout=5)
    assert response.reason == "certificate_mismatch"
    assert [(b.binding, b.verified, b.reason, b.why) for b in response.bindings] == [
        (
            "certificate (x5t#S256)",
            False,
            "certificate_mismatch",
            "certificate-bound token without a client certificate",
        )
    ]
