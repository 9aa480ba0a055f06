"""Quota enforced inside ext_authz Check, and brute-force lockout, through a real Envoy.

The service config gets `rate_limit` (inline limits; memory store, or a real Redis) and
`check_quota`; a client of the gateway sees 429 with the X-RateLimit headers and the same JSON
body as the RateLimitService's. Limits live in their own domain, so the quotas Envoy's
ratelimit filter asks for (domain "gateway") do not interfere.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest
import yaml
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from tests.e2e.conftest import Stack, running_stack
from tests.integration.test_quota_in_check import CHECK_QUOTA, DOMAIN, LIMITS
from tests.support import free_port
from tests.support.redis import redis_store
from tools.envoy_transports import TRANSPORTS

pytestmark = [pytest.mark.envoy, pytest.mark.usefixtures("fresh_minute")]


@dataclass
class QuotaStack:
    stack: Stack

    def call(self, path: str, token: str | None = None, method: str = "GET") -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        with self.stack.client() as client:
            return client.request(method, self.stack.public_url + path, headers=headers)

    def token(self, tier: str, roles: tuple[str, ...] = ("editor",)) -> str:
        subject = f"user-{uuid.uuid4().hex[:8]}"
        return self.stack.idp.mint(subject, roles=list(roles), extra_claims={"tier": tier})

    def rls_body(self, entries: list[tuple[str, str]]) -> str:
        """The RateLimitService's raw_body, asked directly, for a descriptor over its limit."""
        listen = yaml.safe_load(self.stack.config_path.read_text())["server"]["listen"]
        request = rls_pb2.RateLimitRequest(domain=DOMAIN)
        descriptor = request.descriptors.add()
        for key, value in entries:
            descriptor.entries.add(key=key, value=value)
        with grpc.insecure_channel(listen) as channel:
            response = rls_pb2_grpc.RateLimitServiceStub(channel).ShouldRateLimit(
                request, timeout=5
            )
        assert response.overall_code == rls_pb2.RateLimitResponse.OVER_LIMIT
        return str(response.raw_body.decode())


def with_quota(store: dict[str, Any], **rate_limit: Any) -> Any:
    def edit(config: dict[str, Any]) -> None:
        config["rate_limit"] = {**store, "domains": [LIMITS], **rate_limit}
        config["check_quota"] = CHECK_QUOTA

    return edit


@pytest.fixture(scope="module", params=["memory", "redis", "memory-over-http"])
def quota(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, envoy_available: str
) -> Iterator[QuotaStack]:
    """Each store behind gRPC ext_authz, and the memory store behind HTTP ext_authz (the 429,
    its headers and body reach the client through `allowed_client_headers`)."""
    if request.param.startswith("memory"):
        store: dict[str, Any] = {"store": "memory"}
    else:
        store = redis_store(request.getfixturevalue("redis_server").url)
    transport = "http" if request.param.endswith("over-http") else "grpc"
    workdir = tmp_path_factory.mktemp(f"quota-{request.param}")
    with running_stack(workdir, edit_config=with_quota(store), transport=transport) as stack:
        yield QuotaStack(stack)


def test_the_request_past_the_limit_is_429_with_rate_limit_headers_and_the_rls_body(
    quota: QuotaStack,
) -> None:
    token = quota.token("free")
    subject = jwt.decode(token, options={"verify_signature": False})["sub"]

    allowed = [quota.call("/api/orders", token) for _ in range(2)]
    before = quota.rls_body([("tier", "free"), ("user", subject)])
    limited = quota.call("/api/orders", token)
    after = quota.rls_body([("tier", "free"), ("user", subject)])

    assert [r.status_code for r in allowed] == [200, 200], allowed[-1].text
    assert limited.status_code == 429, limited.text
    headers = limited.headers
    assert headers["x-authz-reason"] == "rate_limited"
    assert headers["x-ratelimit-limit"] == '2, 2;w=60;name="free-per-user"'
    assert headers["x-ratelimit-remaining"] == "0"
    assert 1 <= int(headers["x-ratelimit-reset"]) <= 60
    assert headers["retry-after"] == headers["x-ratelimit-reset"]
    assert headers["content-type"] == "application/json"
    # The same bytes as the RateLimitService's 429 body (from the same second).
    assert limited.text in (before, after)
    assert limited.json()["limit"] == "free-per-user"


def test_gold_and_free_tokens_get_their_tier_limits(quota: QuotaStack) -> None:
    gold, free = quota.token("gold"), quota.token("free")

    gold_statuses = [quota.call("/api/orders", gold).status_code for _ in range(6)]
    free_statuses = [quota.call("/api/orders", free).status_code for _ in range(3)]

    assert gold_statuses == [200] * 5 + [429]
    assert free_statuses == [200] * 2 + [429]


def test_anonymous_routes_skip_descriptors_that_need_a_principal(quota: QuotaStack) -> None:
    statuses = [quota.call("/public/hello").status_code for _ in range(8)]

    assert statuses == [200] * 8


def test_write_only_descriptors_do_not_charge_reads(quota: QuotaStack) -> None:
    token = quota.token("gold")

    reads = [quota.call("/api/orders", token).status_code for _ in range(2)]
    first_write = quota.call("/api/orders", token, method="POST")
    second_write = quota.call("/api/orders", token, method="POST")
    read_after = quota.call("/api/orders", token)

    assert reads == [200, 200]
    assert first_write.status_code == 200, first_write.text
    assert second_write.status_code == 429, second_write.text
    assert second_write.json()["limit"] == "writes-per-user"
    assert second_write.headers["x-ratelimit-limit"].startswith("1, 1;w=60")
    assert read_after.status_code == 200, read_after.text


# -- Redis down ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure_mode", "status", "reason"),
    [("unavailable", 503, "rate_limit_unavailable"), ("allow", 200, None)],
)
def test_with_redis_unreachable_failure_mode_decides(
    tmp_path: Path, envoy_available: str, failure_mode: str, status: int, reason: str | None
) -> None:
    # Nothing listens on this port: the service starts anyway and answers per failure_mode.
    store = redis_store(f"redis://127.0.0.1:{free_port()}/0")
    edit = with_quota(store, failure_mode=failure_mode)
    with running_stack(tmp_path, edit_config=edit) as stack:
        quota = QuotaStack(stack)

        started = time.monotonic()
        response = quota.call("/api/orders", quota.token("gold"))

        assert response.status_code == status, response.text
        assert response.headers.get("x-authz-reason") == reason
        assert time.monotonic() - started < 2.0
        if reason is not None:
            assert response.json()["reason"] == reason


# -- Brute force -----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_failed_token_attempts_lock_the_client_out_until_the_lockout_ends(
    tmp_path: Path, envoy_available: str, transport: str
) -> None:
    # Over HTTP too: the client address (Envoy's x-envoy-client-address) keys the lockout.
    edit = with_quota(
        {"store": "memory"},
        brute_force={"enabled": True, "max_failures": 3, "window": "1m", "lockout": "2s"},
    )
    with running_stack(tmp_path, edit_config=edit, transport=transport) as stack:
        quota = QuotaStack(stack)
        valid = quota.token("gold")
        forged = valid[:-4] + ("AAAA" if not valid.endswith("AAAA") else "BBBB")

        failures = [quota.call("/api/orders", forged) for _ in range(3)]
        locked = quota.call("/api/orders", valid)
        locked_at = time.monotonic()

        assert [r.status_code for r in failures] == [401] * 3
        assert locked.status_code == 429, locked.text
        assert locked.headers["x-authz-reason"] == "locked_out"
        assert locked.headers["retry-after"] == "2"
        assert json.loads(locked.text)["reason"] == "locked_out"
        # Anonymous routes are refused too while the address is locked out.
        assert quota.call("/public/hello").status_code == 429
        while (response := quota.call("/api/orders", valid)).status_code == 429:
            assert time.monotonic() - locked_at < 4.0, "the lockout did not end"
            time.sleep(0.1)
        assert response.status_code == 200, response.text
        assert time.monotonic() - locked_at >= 1.0  # it really lasted
