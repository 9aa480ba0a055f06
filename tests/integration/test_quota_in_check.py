"""Quota enforced inside ext_authz Check (`check_quota`), and brute-force lockout, over gRPC.

In-process `AuthzServer`s with the memory store and with a real redis-server; each test
uses its own principals (and its own Redis key prefix), so counters never mix.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from google.rpc import code_pb2

from tests.integration.grpc.conftest import service_config
from tests.support import find_binary
from tests.support.authz_config import write_config
from tests.support.authz_server import running_server
from tests.support.idp import running_idp
from tests.support.redis import RedisServer, redis_store
from tools.dev_idp import DevIdentityProvider

# Counts up to per-minute limits: never across a minute boundary.
pytestmark = pytest.mark.usefixtures("fresh_minute")

DOMAIN = "check"


def limit(name: str, requests_per_minute: int) -> dict[str, Any]:
    return {"unit": "minute", "requests_per_unit": requests_per_minute, "name": name}


# The envoyproxy/ratelimit format, inline: per (tier, user) and per user for writes.
LIMITS = {
    "domain": DOMAIN,
    "descriptors": [
        {
            "key": "tier",
            "value": "gold",
            "descriptors": [{"key": "user", "rate_limit": limit("gold-per-user", 5)}],
        },
        {
            "key": "tier",
            "value": "free",
            "descriptors": [{"key": "user", "rate_limit": limit("free-per-user", 2)}],
        },
        {
            "key": "method_class",
            "value": "write",
            "descriptors": [{"key": "user", "rate_limit": limit("writes-per-user", 1)}],
        },
    ],
}

CHECK_QUOTA = {
    "domain": DOMAIN,
    "descriptors": [
        # Needs a principal and a tier: dropped for anonymous callers.
        {"entries": [{"key": "tier", "source": "tier"}, {"key": "user", "source": "principal"}]},
        {
            "entries": [
                {"key": "method_class", "value": "write"},
                {"key": "user", "source": "principal"},
            ],
            "methods": ["POST", "PUT", "PATCH", "DELETE"],
        },
    ],
}


def quota_config(
    idp: DevIdentityProvider, store: dict[str, Any], **rate_limit: Any
) -> dict[str, Any]:
    config = service_config(idp, watch=False)
    config["admin"] = {"listen": None}
    config["rate_limit"] = {**store, "domains": [LIMITS], **rate_limit}
    config["check_quota"] = CHECK_QUOTA
    return config


def memory_store() -> dict[str, Any]:
    return {"store": "memory"}


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(find_binary("redis-server"), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def idp() -> Iterator[DevIdentityProvider]:
    with running_idp() as provider:
        yield provider


StartServer = Callable[[dict[str, Any]], Awaitable[grpc.aio.Channel]]


@pytest.fixture
async def start_server(tmp_path: Path) -> AsyncIterator[StartServer]:
    """Start an AuthzServer with a config; returns a channel to its port."""
    numbers = itertools.count()
    async with contextlib.AsyncExitStack() as started:

        async def start(config: dict[str, Any]) -> grpc.aio.Channel:
            path = write_config(tmp_path / f"authz{next(numbers)}.yaml", config)
            server = await started.enter_async_context(running_server(path))
            address = f"127.0.0.1:{server.port}"
            return await started.enter_async_context(grpc.aio.insecure_channel(address))

        yield start


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "memory":
        return memory_store()
    return redis_store(request.getfixturevalue("redis").url)


def check_request(
    path: str, token: str | None = None, method: str = "GET", source: str = "203.0.113.7"
) -> external_auth_pb2.CheckRequest:
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method, http.host, http.path = method, "api.example.com", path
    if token is not None:
        http.headers["authorization"] = f"Bearer {token}"
    request.attributes.source.address.socket_address.address = source
    return request


class Answer:
    """A CheckResponse as a client of the gateway would see it."""

    def __init__(self, response: Any) -> None:
        self.allowed = response.status.code == code_pb2.OK
        denied = response.denied_response
        self.status = 200 if self.allowed else denied.status.code
        self.headers = {h.header.key: h.header.value for h in denied.headers}
        self.body = denied.body

    @property
    def reason(self) -> str:
        return self.headers.get("x-authz-reason", "")

    def __repr__(self) -> str:
        return f"Answer({self.status}, {self.reason!r}, {self.body!r})"


async def check(channel: grpc.aio.Channel, *args: Any, **kwargs: Any) -> Answer:
    stub = external_auth_pb2_grpc.AuthorizationStub(channel)
    return Answer(await stub.Check(check_request(*args, **kwargs), timeout=5))


async def rls_body(channel: grpc.aio.Channel, entries: list[tuple[str, str]]) -> str:
    """The RateLimitService's raw_body for one descriptor of the same domain (over limit)."""
    stub = rls_pb2_grpc.RateLimitServiceStub(channel)
    request = rls_pb2.RateLimitRequest(domain=DOMAIN)
    descriptor = request.descriptors.add()
    for key, value in entries:
        descriptor.entries.add(key=key, value=value)
    response = await stub.ShouldRateLimit(request, timeout=5)
    assert response.overall_code == rls_pb2.RateLimitResponse.OVER_LIMIT
    return str(response.raw_body.decode())


def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


# -- Quota inside Check ----------------------------------------------------------------------


async def test_the_request_past_the_limit_is_429_with_rate_limit_headers_and_the_rls_body(
    start_server: StartServer, idp: DevIdentityProvider, store: dict[str, Any]
) -> None:
    channel = await start_server(quota_config(idp, store))
    name = user()
    token = idp.mint(name, extra_claims={"tier": "free"})

    allowed = [await check(channel, "/api/items", token) for _ in range(2)]
    before = await rls_body(channel, [("tier", "free"), ("user", name)])
    limited = await check(channel, "/api/items", token)
    after = await rls_body(channel, [("tier", "free"), ("user", name)])

    assert all(answer.allowed for answer in allowed), allowed
    assert (limited.status, limited.reason) == (429, "rate_limited")
    headers = limited.headers
    assert headers["x-ratelimit-limit"] == '2, 2;w=60;name="free-per-user"'
    assert headers["x-ratelimit-remaining"] == "0"
    assert 1 <= int(headers["x-ratelimit-reset"]) <= 60
    assert headers["retry-after"] == headers["x-ratelimit-reset"]
    assert headers["content-type"] == "application/json"
    # The same body as the RateLimitService's 429 (equal to the one taken in the same second).
    assert limited.body in (before, after)
    assert json.loads(limited.body)["limit"] == "free-per-user"


async def test_limits_depend_on_the_tier_claim_of_the_token(
    start_server: StartServer, idp: DevIdentityProvider, store: dict[str, Any]
) -> None:
    channel = await start_server(quota_config(idp, store))
    gold = idp.mint(user(), extra_claims={"tier": "gold"})
    free = idp.mint(user(), extra_claims={"tier": "free"})

    gold_answers = [await check(channel, "/api/items", gold) for _ in range(6)]
    free_answers = [await check(channel, "/api/items", free) for _ in range(3)]

    assert [a.status for a in gold_answers] == [200] * 5 + [429]
    assert [a.status for a in free_answers] == [200] * 2 + [429]
    assert json.loads(gold_answers[-1].body)["limit"] == "gold-per-user"
    assert gold_answers[-1].headers["x-ratelimit-limit"].startswith("5, 5;w=60")


async def test_anonymous_routes_skip_descriptors_that_need_a_principal(
    start_server: StartServer, idp: DevIdentityProvider, store: dict[str, Any]
) -> None:
    channel = await start_server(quota_config(idp, store))

    answers = [await check(channel, "/public/readme") for _ in range(8)]

    assert all(answer.allowed for answer in answers), answers


async def test_write_only_descriptors_do_not_charge_reads(
    start_server: StartServer, idp: DevIdentityProvider, store: dict[str, Any]
) -> None:
    channel = await start_server(quota_config(idp, store))
    token = idp.mint(user(), extra_claims={"tier": "gold"})

    reads = [await check(channel, "/api/items", token) for _ in range(2)]
    first_write = await check(channel, "/api/items", token, method="POST")
    second_write = await check(channel, "/api/items", token, method="POST")
    read_after = await check(channel, "/api/items", token)

    assert all(answer.allowed for answer in reads), reads
    assert first_write.allowed, first_write  # two reads did not use the one write
    assert (second_write.status, second_write.reason) == (429, "rate_limited")
    assert json.loads(second_write.body)["limit"] == "writes-per-user"
    assert read_after.allowed, read_after  # 5th request of the gold tier's 5


async def test_requests_denied_by_rbac_are_not_charged(
    start_server: StartServer, idp: DevIdentityProvider, store: dict[str, Any]
) -> None:
    channel = await start_server(quota_config(idp, store))
    name = user()
    token = idp.mint(name, extra_claims={"tier": "free"})

    forbidden = [await check(channel, "/admin/users", token) for _ in range(3)]
    allowed = [await check(channel, "/api/items", token) for _ in range(2)]

    # RBAC decides before quota: a 403 is not counted against the caller's quota.
    assert [a.status for a in forbidden] == [403] * 3
    assert all(answer.allowed for answer in allowed), allowed


# -- The store down --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure_mode", "status", "reason"),
    [
        ("unavailable", 503, "rate_limit_unavailable"),
        ("allow", 200, ""),
        ("deny", 429, "rate_limited"),
    ],
)
async def test_with_redis_down_failure_mode_decides(
    start_server: StartServer,
    idp: DevIdentityProvider,
    tmp_path: Path,
    failure_mode: str,
    status: int,
    reason: str,
) -> None:
    redis = RedisServer(find_binary("redis-server"), tmp_path / "redis")
    redis.start()
    try:
        config = quota_config(idp, redis_store(redis.url), failure_mode=failure_mode)
        channel = await start_server(config)
        token = idp.mint(user(), extra_claims={"tier": "gold"})
        assert (await check(channel, "/api/items", token)).allowed
    finally:
        redis.kill()

    started = time.monotonic()
    answer = await check(channel, "/api/items", token)

    assert (answer.status, answer.reason) == (status, reason), answer
    assert time.monotonic() - started < 2.0  # answered fast, not after a long hang
    # Anonymous routes build no descriptor, so they never need the store.
    assert (await check(channel, "/public/readme")).allowed


# -- Brute force -----------------------------------------------------------------------------


def brute_force_config(idp: DevIdentityProvider, store: dict[str, Any]) -> dict[str, Any]:
    config = quota_config(idp, store)
    config["rate_limit"]["brute_force"] = {
        "enabled": True,
        "max_failures": 3,
        "window": "1m",
        "lockout": "2s",
    }
    return config


async def test_repeated_failed_authentications_lock_the_client_address_out(
    start_server: StartServer, idp: DevIdentityProvider, store: dict[str, Any]
) -> None:
    channel = await start_server(brute_force_config(idp, store))
    attacker, bystander = "198.51.100.1", "198.51.100.2"
    valid = idp.mint(user(), extra_claims={"tier": "gold"})
    forged = valid[:-4] + ("AAAA" if not valid.endswith("AAAA") else "BBBB")

    failures = [await check(channel, "/api/items", forged, source=attacker) for _ in range(3)]
    locked = await check(channel, "/api/items", valid, source=attacker)
    other_client = await check(channel, "/api/items", valid, source=bystander)

    assert [a.status for a in failures] == [401] * 3
    assert (locked.status, locked.reason) == (429, "locked_out")
    assert locked.headers["retry-after"] == "2"
    assert json.loads(locked.body)["reason"] == "locked_out"
    assert other_client.allowed, other_client
    # Until the lockout ends (2 s), then the valid token works again.
    deadline = time.monotonic() + 5
    while not (answer := await check(channel, "/api/items", valid, source=attacker)).allowed:
        assert answer.reason == "locked_out"
        assert time.monotonic() < deadline, "the lockout did not end"
        await asyncio.sleep(0.1)


async def test_an_ipv6_attacker_rotating_addresses_in_its_64_is_locked_out(
    start_server: StartServer, idp: DevIdentityProvider, store: dict[str, Any]
) -> None:
    channel = await start_server(brute_force_config(idp, store))
    valid = idp.mint(user(), extra_claims={"tier": "gold"})

    # Every guess from a fresh address of 2001:db8:7:1::/64.
    failures = [
        await check(channel, "/api/items", "x.y.z", source=f"2001:db8:7:1::{n}") for n in (1, 2, 3)
    ]
    neighbour = await check(channel, "/api/items", valid, source="2001:db8:7:1:ffff::1")
    next_64 = await check(channel, "/api/items", valid, source="2001:db8:7:2::1")

    assert [a.status for a in failures] == [401] * 3
    assert (neighbour.status, neighbour.reason) == (429, "locked_out")
    assert next_64.allowed, next_64


async def test_an_ipv4_client_is_one_client_whether_or_not_its_address_is_mapped(
    start_server: StartServer, idp: DevIdentityProvider, store: dict[str, Any]
) -> None:
    channel = await start_server(brute_force_config(idp, store))
    valid = idp.mint(user(), extra_claims={"tier": "gold"})

    for source in ("198.51.100.9", "::ffff:198.51.100.9", "::ffff:198.51.100.9"):
        assert (await check(channel, "/api/items", "x.y.z", source=source)).status == 401
    locked = await check(channel, "/api/items", valid, source="198.51.100.9")

    assert (locked.status, locked.reason) == (429, "locked_out")


async def test_requests_without_credentials_do_not_count_as_failed_attempts(
    start_server: StartServer, idp: DevIdentityProvider
) -> None:
    channel = await start_server(brute_force_config(idp, memory_store()))
    address = "198.51.100.3"

    missing = [await check(channel, "/api/items", source=address) for _ in range(5)]
    valid = await check(
        channel, "/api/items", idp.mint(user(), extra_claims={"tier": "gold"}), source=address
    )

    assert {a.reason for a in missing} == {"authentication_required"}
    assert valid.allowed, valid


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


DEEP_HEADER = b"[" * 3000 + b"]" * 3000
DEEP_PAYLOAD = b'{"a":' * 1000 + b"1" + b"}" * 1000
NOT_UTF8 = b'{"alg":"\xff"}'
UNPARSEABLE_TOKENS = {
    "deep-header": f"{b64url(DEEP_HEADER)}.e30.c2ln",
    "deep-payload": f"eyJhbGciOiJSUzI1NiJ9.{b64url(DEEP_PAYLOAD)}.c2ln",
    "invalid-utf8": f"{b64url(NOT_UTF8)}.e30.c2ln",
    "bad-base64": "eyJhbGciOiJSUzI1NiJ9=.e30.c2ln",
}


@pytest.mark.parametrize("token", UNPARSEABLE_TOKENS.values(), ids=UNPARSEABLE_TOKENS.keys())
async def test_unparseable_tokens_are_401_and_count_towards_the_lockout(
    start_server: StartServer, idp: DevIdentityProvider, store: dict[str, Any], token: str
) -> None:
    channel = await start_server(brute_force_config(idp, store))
    attacker = "198.51.100.4"

    failures = [await check(channel, "/api/items", token, source=attacker) for _ in range(3)]
    locked = await check(channel, "/api/items", token, source=attacker)

    assert [(a.status, a.reason) for a in failures] == [(401, "malformed_token")] * 3, failures
    assert 'error="invalid_token"' in failures[0].headers["www-authenticate"]
    assert (locked.status, locked.reason) == (429, "locked_out")


async def test_with_redis_down_the_lockout_logs_the_outage_once_not_per_request(
    start_server: StartServer,
    idp: DevIdentityProvider,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis = RedisServer(find_binary("redis-server"), tmp_path / "redis")
    redis.start()
    try:
        config = brute_force_config(idp, redis_store(redis.url))
        config["check_quota"] = None  # only the lockout uses the store here
        config["rate_limit"]["circuit_breaker"] = {"failure_threshold": 3, "open_for": "100ms"}
        channel = await start_server(config)
        token = idp.mint(user(), extra_claims={"tier": "gold"})
        assert (await check(channel, "/api/items", token)).allowed
        caplog.set_level("INFO", logger="authz_service")

        redis.kill()
        down = [await check(channel, "/api/items", token) for _ in range(200)]
        down_lines = [r for r in caplog.records if r.levelname == "WARNING"]
        redis.start()  # the same port
        deadline = time.monotonic() + 10
        while not any("answers lockout again" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "no recovery line"
            assert (await check(channel, "/api/items", token)).allowed
    finally:
        redis.kill()

    assert all(answer.allowed for answer in down)  # lockout is defence in depth: fail open
    assert len(down_lines) == 1, [r.getMessage() for r in down_lines]
    assert "lockout not enforced" in down_lines[0].getMessage()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2 and "answers lockout again" in warnings[1], warnings
