"""Two Lambda authorizer instances with JWTs from a real IdP (JWKS over HTTP) and quota in a
real redis-server: the budget is shared, as across the Lambda instances of one API."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from authz_service.lambda_authorizer.handler import LambdaAuthorizer
from authz_service.lambda_authorizer.responses import Unauthorized
from tests.integration.grpc.conftest import service_config
from tests.support.authz_config import write_config
from tests.support.idp import running_idp
from tests.support.redis import RedisServer
from tools.dev_idp import DevIdentityProvider

# Counts up to per-minute limits: never across a minute boundary.
pytestmark = pytest.mark.usefixtures("fresh_minute")

FIXTURES = Path(__file__).parents[2] / "unit" / "lambda_authorizer" / "fixtures"
LIMIT = 3


@pytest.fixture(scope="module")
def redis(redis_server: RedisServer) -> RedisServer:
    return redis_server


@pytest.fixture(scope="module")
def idp() -> Iterator[DevIdentityProvider]:
    with running_idp() as provider:
        yield provider


@pytest.fixture
async def authorizers(
    tmp_path: Path, idp: DevIdentityProvider, redis: RedisServer
) -> AsyncIterator[list[LambdaAuthorizer]]:
    config = service_config(idp, watch=False)
    config["rate_limit"] = {
        "store": "redis",
        "redis": {"url": redis.url, "key_prefix": f"l{uuid.uuid4().hex[:8]}:"},
        "brute_force": {"enabled": False},
        "domains": [
            {
                "domain": "lambda",
                "descriptors": [
                    {"key": "user", "rate_limit": {"unit": "minute", "requests_per_unit": LIMIT}}
                ],
            }
        ],
    }
    config["check_quota"] = {
        "domain": "lambda",
        "descriptors": [{"entries": [{"key": "user", "source": "principal"}]}],
    }
    path = write_config(tmp_path / "authz.yaml", config)
    instances = [LambdaAuthorizer(str(path), {"policy": "public"}) for _ in range(2)]
    yield instances
    for instance in instances:
        await instance.close()


def rest_event(token: str | None, path: str = "/api/orders") -> dict[str, Any]:
    event: dict[str, Any] = json.loads((FIXTURES / "rest_request_v1.json").read_text())
    event["path"] = path
    if token is not None:
        event["headers"]["Authorization"] = f"Bearer {token}"
        event["multiValueHeaders"]["Authorization"] = [f"Bearer {token}"]
    return event


async def test_a_valid_jwt_is_allowed_with_its_subject_as_principal(
    authorizers: list[LambdaAuthorizer], idp: DevIdentityProvider
) -> None:
    token = idp.mint("alice", roles=["admin"], extra_claims={"tier": "gold"})
    answer = await authorizers[0].authorize(rest_event(token, "/admin/users"))
    assert answer["principalId"] == "alice"
    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert answer["context"]["tier"] == "gold"
    assert answer["context"]["roles"] == "admin"


async def test_an_expired_jwt_is_unauthorized(
    authorizers: list[LambdaAuthorizer], idp: DevIdentityProvider
) -> None:
    token = idp.mint("alice", lifetime_s=60, now=1_000_000)
    with pytest.raises(Unauthorized):
        await authorizers[0].authorize(rest_event(token))


async def test_quota_in_redis_is_shared_by_every_instance(
    authorizers: list[LambdaAuthorizer], idp: DevIdentityProvider
) -> None:
    token = idp.mint(f"user-{uuid.uuid4().hex[:8]}")
    effects = []
    for index in range(LIMIT + 1):
        answer = await authorizers[index % 2].authorize(rest_event(token))
        effects.append(answer["policyDocument"]["Statement"][0]["Effect"])
    assert effects == ["Allow"] * LIMIT + ["Deny"]
    assert answer["context"]["reason"] == "rate_limited"
