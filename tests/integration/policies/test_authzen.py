"""The AuthZEN Authorization API 1.0 access evaluation endpoint on a real service's HTTP port,
fed the spec's own examples (section 6: subject alice@acmecorp.com, resource account 123,
action can_read with properties.method GET, context time)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from authz_service.server import AuthzServer
from tests.integration.grpc.conftest import service_config
from tests.support.authz_config import write_config
from tests.support.authz_server import running_server
from tests.support.idp import running_idp
from tools.dev_idp import DevIdentityProvider

SPEC_REQUEST: dict[str, Any] = {
    "subject": {"type": "user", "id": "alice@acmecorp.com"},
    "resource": {"type": "account", "id": "123"},
    "action": {"name": "can_read", "properties": {"method": "GET"}},
    "context": {"time": "1985-10-26T01:22-07:00"},
}


@pytest.fixture(scope="module")
def idp() -> Iterator[DevIdentityProvider]:
    with running_idp() as provider:
        yield provider


@pytest.fixture
async def server(tmp_path: Path, idp: DevIdentityProvider) -> AsyncIterator[AuthzServer]:
    config = service_config(idp, watch=False)
    config["http_check"] = {"listen": "127.0.0.1:0", "authzen": {"enabled": True}}
    config["policies"]["public"]["rules"].append(
        {
            "name": "accounts",
            "match": {"methods": ["GET"], "paths": [{"prefix": "/account/"}]},
            "allow": "authenticated",
        }
    )
    async with running_server(write_config(tmp_path / "authz.yaml", config)) as running:
        yield running


async def evaluate(server: AuthzServer, body: Any, **headers: str) -> httpx.Response:
    assert server.http_check is not None
    url = f"http://127.0.0.1:{server.http_check.port}/access/v1/evaluation"
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.post(url, json=body, headers=headers)


def with_token(request: dict[str, Any], token: str) -> dict[str, Any]:
    sent = copy.deepcopy(request)
    sent["subject"]["properties"] = {"token": token}
    return sent


async def test_the_spec_example_is_allowed_for_alices_verified_token(
    server: AuthzServer, idp: DevIdentityProvider
) -> None:
    token = idp.mint("alice@acmecorp.com", roles=["reader"])

    response = await evaluate(server, with_token(SPEC_REQUEST, token), **{"x-request-id": "r-1"})

    assert response.status_code == 200
    assert response.headers["x-request-id"] == "r-1"
    body = response.json()
    assert body["decision"] is True
    assert body["context"]["rule"] == "accounts"


async def test_the_spec_example_without_a_credential_is_denied_with_200(
    server: AuthzServer,
) -> None:
    response = await evaluate(server, SPEC_REQUEST)

    assert response.status_code == 200
    assert response.json()["decision"] is False
    assert response.json()["context"]["reason"] == "authentication_required"


async def test_an_action_name_alone_maps_through_the_configured_actions(
    server: AuthzServer, idp: DevIdentityProvider
) -> None:
    request = copy.deepcopy(SPEC_REQUEST)
    request["action"] = {"name": "can_read"}
    token = idp.mint("alice@acmecorp.com")

    assert (await evaluate(server, with_token(request, token))).json()["decision"] is True
    request["action"] = {"name": "can_delete"}
    denied = (await evaluate(server, with_token(request, token))).json()
    assert denied["decision"] is False and denied["context"]["reason"] == "no_matching_rule"


async def test_a_subject_id_other_than_the_verified_principal_is_denied(
    server: AuthzServer, idp: DevIdentityProvider
) -> None:
    token = idp.mint("mallory@acmecorp.com")

    body = (await evaluate(server, with_token(SPEC_REQUEST, token))).json()

    assert body["decision"] is False
    assert body["context"]["reason"] == "subject_mismatch"


async def test_an_unknown_action_is_a_deny_not_an_error(
    server: AuthzServer, idp: DevIdentityProvider
) -> None:
    request = copy.deepcopy(SPEC_REQUEST)
    request["action"] = {"name": "can_teleport"}

    response = await evaluate(server, with_token(request, idp.mint("alice@acmecorp.com")))

    assert response.status_code == 200
    assert response.json()["decision"] is False
    assert response.json()["context"]["reason"] == "bad_request"


@pytest.mark.parametrize(
    "body",
    [
        {"resource": SPEC_REQUEST["resource"], "action": SPEC_REQUEST["action"]},
        {**SPEC_REQUEST, "subject": {"id": "alice@acmecorp.com"}},
        "not an object",
    ],
    ids=["no-subject", "subject-without-type", "not-an-object"],
)
async def test_a_malformed_request_is_400(server: AuthzServer, body: Any) -> None:
    response = await evaluate(server, body)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_the_metadata_names_the_evaluation_endpoint(server: AuthzServer) -> None:
    assert server.http_check is not None
    base = f"http://127.0.0.1:{server.http_check.port}"
    async with httpx.AsyncClient(timeout=5) as client:
        document = (await client.get(base + "/.well-known/authzen-configuration")).json()

    assert document["access_evaluation_endpoint"] == base + "/access/v1/evaluation"
