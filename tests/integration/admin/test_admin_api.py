"""The admin gRPC API (authz_service.admin.v1.AdminService) against a running service.

In-process `AuthzServer`s on port 0 (admin API on its own port 0) called over real gRPC
channels; the `authz-service admin` CLI run as a process against a service process.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from google.rpc import code_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from authz_service.admin.v1 import admin_pb2, admin_pb2_grpc
from authz_service.cli.main import main
from authz_service.config.loader import ConfigError, load_config_file
from authz_service.server import AUTHORIZATION_SERVICE, AuthzServer
from tests.integration.grpc.conftest import service_config
from tests.support import free_port
from tests.support.authz_config import write_config
from tests.support.authz_server import running_server
from tests.support.idp import running_idp
from tools.dev_idp import DevIdentityProvider
from tools.processes import REPO_ROOT, Process, start_authz, wait_for_port

# Counts up to per-minute limits: never across a minute boundary.
pytestmark = pytest.mark.usefixtures("fresh_minute")

ADMIN_TOKEN = "test-admin-token-5f1c0e"  # a test secret
ADMIN_TOKEN_HASH = "sha256:" + hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()
AUTHORIZED = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
ADMIN_SERVICE = "authz_service.admin.v1.AdminService"


def admin_config(idp: DevIdentityProvider, listen: str = "127.0.0.1:0") -> dict[str, Any]:
    """The grpc integration config plus the admin API (with a token) and quota in Check."""
    config = service_config(idp, watch=False)
    config["admin"] = {"listen": listen, "token_hash": ADMIN_TOKEN_HASH}
    config["rate_limit"] = {
        "store": "memory",
        "domains": [
            {
                "domain": "api",
                "descriptors": [
                    {
                        "key": "user",
                        "rate_limit": {
                            "unit": "minute",
                            "requests_per_unit": 5,
                            "name": "per-user",
                        },
                    },
                    {
                        # Several limits on one descriptor: admin quota shows each of them.
                        "key": "tenant",
                        "rate_limits": [
                            {"unit": "second", "requests_per_unit": 10, "name": "per-second"},
                            {"unit": "day", "requests_per_unit": 1000, "name": "per-day"},
                            {"window": "30s", "requests_per_unit": 50, "name": "per-30s"},
                        ],
                    },
                ],
            }
        ],
    }
    config["check_quota"] = {
        "domain": "api",
        "descriptors": [{"entries": [{"key": "user", "source": "principal"}]}],
    }
    return config


def check_request(path: str, token: str | None = None) -> external_auth_pb2.CheckRequest:
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method, http.host, http.path = "GET", "api.example.com", path
    if token is not None:
        http.headers["authorization"] = f"Bearer {token}"
    return request


@pytest.fixture
def idp() -> Iterator[DevIdentityProvider]:
    with running_idp() as provider:
        yield provider


@pytest.fixture
def config_path(tmp_path: Path, idp: DevIdentityProvider) -> Path:
    return write_config(tmp_path / "authz.yaml", admin_config(idp))


@pytest.fixture
async def server(config_path: Path) -> AsyncIterator[AuthzServer]:
    async with running_server(config_path) as authz:
        yield authz


@pytest.fixture
async def admin_channel(server: AuthzServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.admin_port}") as opened:
        yield opened


@pytest.fixture
def admin(admin_channel: grpc.aio.Channel) -> admin_pb2_grpc.AdminServiceStub:
    return admin_pb2_grpc.AdminServiceStub(admin_channel)


@pytest.fixture
async def data_channel(server: AuthzServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as opened:
        yield opened


async def check(channel: grpc.aio.Channel, path: str, token: str) -> Any:
    stub = external_auth_pb2_grpc.AuthorizationStub(channel)
    return await stub.Check(check_request(path, token), timeout=5)


async def get_quota(admin: Any, user: str, *, reset: bool = False) -> list[Any]:
    request = admin_pb2.QuotaRequest(
        domain="api", entries=[admin_pb2.DescriptorEntry(key="user", value=user)]
    )
    method = admin.ResetQuota if reset else admin.GetQuota
    response = await method(request, metadata=AUTHORIZED, timeout=5)
    return list(response.counters)


# -- Explain ---------------------------------------------------------------------------------


async def test_explain_returns_the_decision_and_every_rule_evaluated(
    admin: Any, idp: DevIdentityProvider
) -> None:
    token = idp.mint("alice", roles=["reader"], extra_claims={"tier": "gold"})

    response = await admin.Explain(
        admin_pb2.ExplainRequest(method="GET", path="/api/items", token=token),
        metadata=AUTHORIZED,
        timeout=5,
    )

    assert (response.decision, response.reason) == ("allow", "allowed")
    assert (response.policy, response.rule) == ("public", "api")
    assert response.credential == "bearer token from header authorization"
    assert response.identity.principal == "alice"
    assert response.identity.tier == "gold"
    assert [(r.rule, r.matched, r.decided) for r in response.rules] == [
        ("public-docs", False, False),
        ("admin-area", False, False),
        ("api", True, True),
    ]
    assert all(rule.why for rule in response.rules)
    assert token not in str(response)


async def test_explain_names_the_rule_that_forbids_a_request(
    admin: Any, idp: DevIdentityProvider
) -> None:
    token = idp.mint("bob", roles=["reader"])

    response = await admin.Explain(
        admin_pb2.ExplainRequest(method="DELETE", path="/admin/users/7", token=token),
        metadata=AUTHORIZED,
        timeout=5,
    )

    assert (response.decision, response.reason, response.rule) == (
        "forbidden",
        "missing_role",
        "admin-area",
    )
    assert [r.rule for r in response.rules if r.decided] == ["admin-area"]


async def test_explain_previews_the_quota_and_never_charges_it(
    admin: Any, data_channel: grpc.aio.Channel, idp: DevIdentityProvider
) -> None:
    token = idp.mint("carol")
    assert (await check(data_channel, "/api/items", token)).status.code == code_pb2.OK

    async def explain() -> Any:
        return await admin.Explain(
            admin_pb2.ExplainRequest(path="/api/items", token=token), metadata=AUTHORIZED
        )

    for _ in range(7):  # more than the limit of 5
        explained = await explain()
        assert explained.decision == "allow"
    assert explained.quota_domain == "api"
    (quota,) = explained.quotas
    assert [(e.key, e.value) for e in quota.entries] == [("user", "carol")]
    assert (quota.code, quota.remaining, quota.requests_per_unit, quota.unit) == (
        "OK",
        4,
        5,
        "minute",
    )
    assert quota.limit_name == "per-user"
    (after,) = await get_quota(admin, "carol")
    assert (after.used, after.remaining) == (1, 4)


async def test_explain_says_429_once_the_quota_is_used_up(
    admin: Any, data_channel: grpc.aio.Channel, idp: DevIdentityProvider
) -> None:
    token = idp.mint("oscar")
    for _ in range(5):
        assert (await check(data_channel, "/api/items", token)).status.code == code_pb2.OK

    explained = await admin.Explain(
        admin_pb2.ExplainRequest(path="/api/items", token=token), metadata=AUTHORIZED
    )

    assert (explained.decision, explained.reason, explained.rule) == (
        "rate_limited",
        "rate_limited",
        "api",
    )
    assert [(q.code, q.remaining) for q in explained.quotas] == [("OVER_LIMIT", 0)]
    denied = await check(data_channel, "/api/items", token)
    assert denied.denied_response.status.code == 429  # what Check really answers next


async def test_explain_shows_a_brute_force_lockout_and_the_rules_behind_it(
    tmp_path: Path, idp: DevIdentityProvider
) -> None:
    config = admin_config(idp)
    config["rate_limit"]["brute_force"] = {
        "enabled": True,
        "max_failures": 2,
        "window": "1m",
        "lockout": "2m",
    }
    async with (
        running_server(write_config(tmp_path / "lockout.yaml", config)) as authz,
        grpc.aio.insecure_channel(f"127.0.0.1:{authz.port}") as data,
        grpc.aio.insecure_channel(f"127.0.0.1:{authz.admin_port}") as admin_channel,
    ):
        admin = admin_pb2_grpc.AdminServiceStub(admin_channel)
        attacker, bystander = "192.0.2.66", "192.0.2.67"
        refused = check_request("/api/items", "not-a-token")
        refused.attributes.source.address.socket_address.address = attacker
        stub = external_auth_pb2_grpc.AuthorizationStub(data)
        for _ in range(2):
            answer = await stub.Check(refused, timeout=5)
            assert answer.denied_response.status.code == 401

        async def explain(source: str) -> Any:
            request = admin_pb2.ExplainRequest(
                path="/api/items", token=idp.mint("mallory"), source_address=source
            )
            return await admin.Explain(request, metadata=AUTHORIZED, timeout=5)

        locked = await explain(attacker)
        free = await explain(bystander)

    assert (locked.decision, locked.reason) == ("rate_limited", "locked_out")
    assert locked.lockout.locked and 0 < locked.lockout.retry_after_seconds <= 120
    assert [r.rule for r in locked.rules if r.decided] == ["api"]  # RBAC alone would allow
    assert not locked.quotas  # refused before the quota
    assert (free.decision, free.lockout.locked, free.lockout.failures_left) == ("allow", False, 2)


async def test_explain_shows_the_lockout_of_an_ipv6_64_and_of_a_mapped_ipv4_address(
    tmp_path: Path, idp: DevIdentityProvider
) -> None:
    """Explain reads the lockout under the same key Check counts it under."""
    config = admin_config(idp)
    config["rate_limit"]["brute_force"] = {"enabled": True, "max_failures": 2, "lockout": "2m"}
    async with (
        running_server(write_config(tmp_path / "lockout6.yaml", config)) as authz,
        grpc.aio.insecure_channel(f"127.0.0.1:{authz.port}") as data,
        grpc.aio.insecure_channel(f"127.0.0.1:{authz.admin_port}") as admin_channel,
    ):
        admin = admin_pb2_grpc.AdminServiceStub(admin_channel)
        stub = external_auth_pb2_grpc.AuthorizationStub(data)
        for source in ("2001:db8:66::1", "2001:db8:66::2", "192.0.2.70", "::ffff:192.0.2.70"):
            refused = check_request("/api/items", "not-a-token")
            refused.attributes.source.address.socket_address.address = source
            assert (await stub.Check(refused, timeout=5)).denied_response.status.code == 401

        async def locked(source: str) -> bool:
            request = admin_pb2.ExplainRequest(
                path="/api/items", token=idp.mint("mallory"), source_address=source
            )
            answer = await admin.Explain(request, metadata=AUTHORIZED, timeout=5)
            return bool(answer.lockout.locked)

        views = {
            source: await locked(source)
            for source in ("2001:db8:66::ab", "2001:db8:67::1", "192.0.2.70", "::ffff:192.0.2.70")
        }

    assert views == {
        "2001:db8:66::ab": True,  # same /64 as the two failures
        "2001:db8:67::1": False,
        "192.0.2.70": True,  # one failure as IPv4, one as IPv4-mapped IPv6
        "::ffff:192.0.2.70": True,
    }


# -- Reload and Status -----------------------------------------------------------------------


async def test_reload_picks_up_a_changed_file(
    admin: Any, config_path: Path, idp: DevIdentityProvider
) -> None:
    before = await admin.Status(admin_pb2.StatusRequest(), metadata=AUTHORIZED)
    config = admin_config(idp)
    config["policies"]["public"]["rules"][2] = {"name": "api-closed", "deny": True}
    write_config(config_path, config)

    reloaded = await admin.Reload(admin_pb2.ReloadRequest(), metadata=AUTHORIZED)

    assert reloaded.changed and not reloaded.error
    assert reloaded.version != before.version
    explained = await admin.Explain(
        admin_pb2.ExplainRequest(path="/api/items", token=idp.mint("alice")), metadata=AUTHORIZED
    )
    assert (explained.decision, explained.rule) == ("forbidden", "api-closed")
    status = await admin.Status(admin_pb2.StatusRequest(), metadata=AUTHORIZED)
    assert (status.version, status.reloads, status.failed_reloads) == (reloaded.version, 1, 0)
    assert status.loaded_at_unix >= before.loaded_at_unix


async def test_reload_of_an_unchanged_file_reports_the_running_version(admin: Any) -> None:
    status = await admin.Status(admin_pb2.StatusRequest(), metadata=AUTHORIZED)

    reloaded = await admin.Reload(admin_pb2.ReloadRequest(), metadata=AUTHORIZED)

    assert (reloaded.changed, reloaded.version, reloaded.error) == (False, status.version, "")


async def test_reload_of_a_bad_file_reports_its_error_and_keeps_the_old_config(
    admin: Any, config_path: Path, idp: DevIdentityProvider
) -> None:
    before = await admin.Status(admin_pb2.StatusRequest(), metadata=AUTHORIZED)
    config = admin_config(idp)
    config["policies"]["public"]["rules"][2]["alow"] = "anonymous"  # misspelled key
    write_config(config_path, config)

    reloaded = await admin.Reload(admin_pb2.ReloadRequest(), metadata=AUTHORIZED)

    assert not reloaded.changed
    assert reloaded.version == before.version
    assert str(config_path) in reloaded.error
    assert "alow" in reloaded.error
    status = await admin.Status(admin_pb2.StatusRequest(), metadata=AUTHORIZED)
    assert (status.version, status.reloads, status.failed_reloads) == (before.version, 0, 1)
    assert status.last_error == reloaded.error
    assert status.last_error_at_unix == pytest.approx(time.time(), abs=30)
    explained = await admin.Explain(
        admin_pb2.ExplainRequest(path="/api/items", token=idp.mint("alice")), metadata=AUTHORIZED
    )
    assert (explained.decision, explained.rule) == ("allow", "api")  # the old policy still runs


async def test_status_shows_version_config_and_jwks_keys_per_provider(
    admin: Any, server: AuthzServer, config_path: Path, idp: DevIdentityProvider
) -> None:
    async def status() -> Any:
        return await admin.Status(admin_pb2.StatusRequest(), metadata=AUTHORIZED, timeout=5)

    # The first JWKS fetch runs in the background from start.
    deadline = time.monotonic() + 5
    response = await status()
    while not (response.jwks and response.jwks[0].key_ids) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        response = await status()

    assert response.version == server.compiled_config.version
    assert len(response.version) == 12
    assert response.config_path == str(config_path)
    assert response.loaded_at_unix == pytest.approx(time.time(), abs=60)
    assert (response.reloads, response.failed_reloads, response.last_error) == (0, 0, "")
    assert response.revocation_store == "memory"
    (jwks,) = response.jwks
    assert (jwks.provider, jwks.issuer) == ("dev", idp.issuer)
    assert list(jwks.key_ids) == [idp.signing_key.kid]
    assert jwks.last_refresh_unix == pytest.approx(time.time(), abs=30)
    assert (jwks.last_failure_unix, jwks.last_error) == (0.0, "")


# -- Quotas ----------------------------------------------------------------------------------


async def should_rate_limit(channel: grpc.aio.Channel, user: str) -> Any:
    stub = rls_pb2_grpc.RateLimitServiceStub(channel)
    request = rls_pb2.RateLimitRequest(domain="api")
    request.descriptors.add().entries.add(key="user", value=user)
    return await stub.ShouldRateLimit(request, timeout=5)


async def test_get_quota_reads_counters_and_reset_quota_clears_them(
    admin: Any, data_channel: grpc.aio.Channel
) -> None:
    for _ in range(3):
        await should_rate_limit(data_channel, "dave")

    (counter,) = await get_quota(admin, "dave")
    assert (counter.limit_name, counter.requests_per_unit, counter.unit) == (
        "per-user",
        5,
        "minute",
    )
    assert (counter.used, counter.remaining) == (3, 2)
    assert 0 < counter.reset_in_seconds <= 60
    (again,) = await get_quota(admin, "dave")
    assert again.used == 3  # reading does not charge

    (cleared,) = await get_quota(admin, "dave", reset=True)
    assert (cleared.used, cleared.remaining) == (0, 5)
    response = await should_rate_limit(data_channel, "dave")
    assert response.statuses[0].limit_remaining == 4
    (other,) = await get_quota(admin, "erin")
    assert other.used == 0


async def tenant_quota(admin: Any, tenant: str, *, reset: bool = False) -> list[Any]:
    request = admin_pb2.QuotaRequest(
        domain="api", entries=[admin_pb2.DescriptorEntry(key="tenant", value=tenant)]
    )
    method = admin.ResetQuota if reset else admin.GetQuota
    return list((await method(request, metadata=AUTHORIZED, timeout=5)).counters)


async def test_get_quota_shows_every_limit_of_a_descriptor_and_reset_clears_them_all(
    admin: Any, data_channel: grpc.aio.Channel
) -> None:
    stub = rls_pb2_grpc.RateLimitServiceStub(data_channel)
    request = rls_pb2.RateLimitRequest(domain="api")
    request.descriptors.add().entries.add(key="tenant", value="acme")
    for _ in range(3):
        await stub.ShouldRateLimit(request, timeout=5)

    counters = await tenant_quota(admin, "acme")
    cleared = await tenant_quota(admin, "acme", reset=True)
    after = await stub.ShouldRateLimit(request, timeout=5)

    shown = [
        (c.limit_name, c.requests_per_unit, c.unit, c.window_seconds, c.used, c.remaining)
        for c in counters
    ]
    # Three in the same second is not enough to be sure; allow the second to have rolled over.
    assert shown[1:] == [
        ("per-day", 1000, "day", 86400.0, 3, 997),
        ("per-30s", 50, "second", 30.0, 3, 47),
    ], shown
    assert shown[0][:4] == ("per-second", 10, "second", 1.0)
    assert 0 < counters[1].reset_in_seconds <= 86400 and 0 < counters[2].reset_in_seconds <= 30
    assert [(c.limit_name, c.used) for c in cleared] == [
        ("per-second", 0),
        ("per-day", 0),
        ("per-30s", 0),
    ]
    assert after.statuses[0].limit_remaining == 9  # the per-second one, the tightest, fresh


async def test_reset_quota_lets_a_caller_over_its_limit_in_again_at_once(
    admin: Any, data_channel: grpc.aio.Channel, idp: DevIdentityProvider
) -> None:
    token = idp.mint("judy")
    answers = [await check(data_channel, "/api/items", token) for _ in range(6)]
    assert [a.denied_response.status.code for a in answers][-1] == 429
    (over,) = await get_quota(admin, "judy")
    assert (over.used, over.remaining) == (5, 0)

    await get_quota(admin, "judy", reset=True)

    # Not still refused from the in-process over-limit cache.
    assert (await check(data_channel, "/api/items", token)).status.code == code_pb2.OK


async def test_quota_of_a_descriptor_without_a_limit_is_failed_precondition(admin: Any) -> None:
    request = admin_pb2.QuotaRequest(
        domain="nope", entries=[admin_pb2.DescriptorEntry(key="user", value="x")]
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await admin.GetQuota(request, metadata=AUTHORIZED, timeout=5)
    assert raised.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "no limit matches" in (raised.value.details() or "")


# -- Revoke ----------------------------------------------------------------------------------


async def test_revoke_by_jti_denies_that_token_only(
    admin: Any, data_channel: grpc.aio.Channel, idp: DevIdentityProvider
) -> None:
    revoked, other = idp.mint("frank"), idp.mint("frank")
    jti = jwt.decode(revoked, options={"verify_signature": False})["jti"]

    response = await admin.Revoke(admin_pb2.RevokeRequest(jti=jti), metadata=AUTHORIZED)

    assert response.expires_at_unix == pytest.approx(time.time() + 86_400, abs=30)
    denied = await check(data_channel, "/api/items", revoked)
    assert denied.denied_response.status.code == 401
    assert json.loads(denied.denied_response.body)["reason"] == "token_revoked"
    assert (await check(data_channel, "/api/items", other)).status.code == code_pb2.OK


async def test_revoke_without_a_target_is_invalid_argument(admin: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await admin.Revoke(admin_pb2.RevokeRequest(), metadata=AUTHORIZED, timeout=5)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT


# -- Authentication and exposure -------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer wrong-token"),),
        (("authorization", ADMIN_TOKEN),),  # no Bearer scheme
        (("authorization", f"Basic {ADMIN_TOKEN}"),),
        (("authorization", f"Bearer {ADMIN_TOKEN_HASH}"),),  # the hash is not the token
    ],
    ids=["no-token", "wrong-token", "no-scheme", "basic-scheme", "the-hash"],
)
async def test_admin_calls_without_the_right_token_are_unauthenticated(
    admin: Any,
    data_channel: grpc.aio.Channel,
    idp: DevIdentityProvider,
    metadata: tuple[tuple[str, str], ...],
) -> None:
    token = idp.mint("grace")
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    calls = [
        admin.Status(admin_pb2.StatusRequest(), metadata=metadata, timeout=5),
        admin.Reload(admin_pb2.ReloadRequest(), metadata=metadata, timeout=5),
        admin.Explain(admin_pb2.ExplainRequest(path="/"), metadata=metadata, timeout=5),
        admin.Revoke(admin_pb2.RevokeRequest(jti=jti), metadata=metadata, timeout=5),
        admin.GetQuota(admin_pb2.QuotaRequest(domain="api"), metadata=metadata, timeout=5),
        admin.ResetQuota(admin_pb2.QuotaRequest(domain="api"), metadata=metadata, timeout=5),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert raised.value.details() == "admin token required"
    # The refused Revoke had no effect.
    assert (await check(data_channel, "/api/items", token)).status.code == code_pb2.OK


async def test_reflection_on_the_admin_port_lists_the_admin_service(
    admin_channel: grpc.aio.Channel, data_channel: grpc.aio.Channel
) -> None:
    async def services(channel: grpc.aio.Channel, metadata: Any) -> set[str]:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        names: set[str] = set()
        async for reply in stub.ServerReflectionInfo(iter([request]), metadata=metadata):
            names |= {service.name for service in reply.list_services_response.service}
        return names

    admin_services = await services(admin_channel, AUTHORIZED)
    assert ADMIN_SERVICE in admin_services
    assert AUTHORIZATION_SERVICE not in admin_services
    # The data-plane port Envoy reaches does not expose the admin API.
    assert ADMIN_SERVICE not in await services(data_channel, ())


async def test_a_loopback_admin_port_without_token_hash_needs_no_token(
    tmp_path: Path, idp: DevIdentityProvider
) -> None:
    config = admin_config(idp)
    config["admin"] = {"listen": "127.0.0.1:0"}
    async with (
        running_server(write_config(tmp_path / "open.yaml", config)) as authz,
        grpc.aio.insecure_channel(f"127.0.0.1:{authz.admin_port}") as channel,
    ):
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        status = await stub.Status(admin_pb2.StatusRequest(), timeout=5)
        assert status.version == authz.compiled_config.version


def test_a_non_loopback_admin_listen_without_token_hash_is_a_config_error(
    tmp_path: Path, idp: DevIdentityProvider
) -> None:
    config = admin_config(idp, listen="0.0.0.0:9002")
    del config["admin"]["token_hash"]
    path = write_config(tmp_path / "exposed.yaml", config)

    with pytest.raises(ConfigError) as raised:
        load_config_file(path)

    message = str(raised.value)
    assert str(path) in message
    assert "admin.listen '0.0.0.0:9002' is not loopback" in message
    assert "token_hash" in message
    config["admin"]["token_hash"] = ADMIN_TOKEN_HASH
    assert load_config_file(write_config(path, config)).config.admin.listen == "0.0.0.0:9002"


# -- The CLI, end to end against a service process -------------------------------------------


@dataclass
class RunningService:
    process: Process
    port: int
    admin_address: str
    config_path: Path
    idp: DevIdentityProvider


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    workdir = tmp_path_factory.mktemp("admin-cli")
    port, admin_port = free_port(), free_port()
    with running_idp() as provider:
        config = admin_config(provider, listen=f"127.0.0.1:{admin_port}")
        config["server"]["listen"] = f"127.0.0.1:{port}"
        path = write_config(workdir / "authz.yaml", config)
        process = start_authz(path, port, workdir)
        try:
            wait_for_port(admin_port, process=process.popen)
            running = RunningService(process, port, f"127.0.0.1:{admin_port}", path, provider)
            _wait_for_jwks(running)
            yield running
        finally:
            process.stop()


def _wait_for_jwks(service: RunningService) -> None:
    with grpc.insecure_channel(service.admin_address) as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status = stub.Status(admin_pb2.StatusRequest(), metadata=AUTHORIZED, timeout=5)
            if status.jwks and status.jwks[0].key_ids:
                return
            time.sleep(0.05)
    raise AssertionError("the service never fetched its JWKS")


def cli(
    service: RunningService,
    *args: str,
    token: str | None = ADMIN_TOKEN,
    env: dict[str, str] | None = None,
) -> CliResult:
    """`authz-service admin --address <service> ARGS` as its own process."""
    environment = {k: v for k, v in os.environ.items() if k != "AUTHZ_ADMIN_TOKEN"}
    if token is not None:
        environment["AUTHZ_ADMIN_TOKEN"] = token
    argv = [sys.executable, "-m", "authz_service", "admin", "--address", service.admin_address]
    done = subprocess.run(
        [*argv, *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO_ROOT,
        env={**environment, **(env or {})},
    )
    # Whatever happens, the admin token is never printed.
    assert ADMIN_TOKEN not in done.stdout + done.stderr
    return CliResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def admin_cli(
    service: RunningService, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., CliResult]:
    """The same command through `authz_service.cli.main` in this process (no interpreter
    start-up per call); the service is still a separate process reached over gRPC."""

    def run(*args: str, env: dict[str, str] | None = None) -> CliResult:
        monkeypatch.setenv("AUTHZ_ADMIN_TOKEN", ADMIN_TOKEN)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        code = main(["admin", "--address", service.admin_address, *args])
        out, err = capsys.readouterr()
        assert ADMIN_TOKEN not in out + err
        return CliResult(code, out, err)

    return run


def explain_with_token(admin_cli: Callable[..., CliResult], token: str, *args: str) -> CliResult:
    """`admin explain ARGS` with the token passed the safe way: by naming an env variable."""
    return admin_cli(
        "explain", *args, "--token-from-env", "TOKEN_TO_EXPLAIN", env={"TOKEN_TO_EXPLAIN": token}
    )


def test_cli_status_is_readable(service: RunningService) -> None:
    result = cli(service, "status")

    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"config:     {service.config_path} version ")
    assert "reloads:    0 ok, 0 failed" in lines
    assert "revocation: memory" in lines
    assert any(line.startswith("jwks dev: 1 keys, refreshed 20") for line in lines)


def test_cli_status_json_is_the_response_as_json(
    service: RunningService, admin_cli: Callable[..., CliResult]
) -> None:
    result = admin_cli("--json", "status")

    assert result.code == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["config_path"] == str(service.config_path)
    assert len(status["version"]) == 12
    assert status["jwks"][0]["key_ids"] == [service.idp.signing_key.kid]


def test_cli_explain_shows_the_decision_and_rules_without_printing_the_token(
    service: RunningService, admin_cli: Callable[..., CliResult]
) -> None:
    token = service.idp.mint("alice", roles=["reader"])

    result = explain_with_token(admin_cli, token, "--method", "DELETE", "--path", "/admin/users/1")

    assert result.code == 0, result.stderr
    assert "decision:   FORBIDDEN (missing_role)" in result.stdout
    assert "rule:       admin-area" in result.stdout
    assert "credential: bearer token from header authorization" in result.stdout
    assert "identity:   alice via jwt, roles ['reader']" in result.stdout
    assert "  => admin-area: matched:" in result.stdout
    assert "     public-docs: skipped:" in result.stdout
    assert token not in result.stdout + result.stderr


def test_cli_explain_shows_the_quota_the_next_request_would_meet(
    service: RunningService, admin_cli: Callable[..., CliResult]
) -> None:
    token = service.idp.mint("peggy")

    result = explain_with_token(admin_cli, token, "--path", "/api/items")

    assert result.code == 0, result.stderr
    assert "decision:   ALLOW (allowed)" in result.stdout
    assert "quota:      domain api (the next request; nothing charged)" in result.stdout
    assert "  user=peggy: OK, 5 of 5/minute (per-user) left, resets in " in result.stdout


def test_cli_explain_json(admin_cli: Callable[..., CliResult]) -> None:
    result = admin_cli("--json", "explain", "--path", "/public/readme")

    assert result.code == 0, result.stderr
    explained = json.loads(result.stdout)
    assert (explained["decision"], explained["rule"]) == ("allow", "public-docs")
    first = explained["rules"][0]
    assert (first["rule"], first["matched"], first["decided"]) == ("public-docs", True, True)


def test_cli_reload_reports_the_version(admin_cli: Callable[..., CliResult]) -> None:
    result = admin_cli("reload")
    as_json = admin_cli("--json", "reload")

    assert result.code == 0, result.stderr
    assert result.stdout.startswith("unchanged: version ")
    assert json.loads(as_json.stdout)["version"] in result.stdout


def test_cli_revoke_by_jti_makes_check_deny_the_token(
    service: RunningService, admin_cli: Callable[..., CliResult]
) -> None:
    token = service.idp.mint("heidi")
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]

    result = admin_cli("revoke", "--jti", jti, "--until", str(time.time() + 300))

    assert result.code == 0, result.stderr
    assert result.stdout.startswith("revoked until 20")
    with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        response = stub.Check(check_request("/api/items", token), timeout=5)
    assert json.loads(response.denied_response.body)["reason"] == "token_revoked"


def test_cli_quota_reads_and_resets_counters(
    service: RunningService, admin_cli: Callable[..., CliResult]
) -> None:
    token = service.idp.mint("ivan")
    with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        for _ in range(2):
            assert stub.Check(check_request("/api/items", token), timeout=5).status.code == 0

    read = admin_cli("quota", "--domain", "api", "--entry", "user=ivan")
    as_json = admin_cli("--json", "quota", "--domain", "api", "--entry", "user=ivan")
    reset = admin_cli("quota", "--domain", "api", "--entry", "user=ivan", "--reset")

    assert read.code == 0, read.stderr
    assert read.stdout.startswith("per-user: 2/5 per minute, 3 left, resets in ")
    assert json.loads(as_json.stdout)["counters"][0]["used"] == "2"  # uint64 as JSON string
    assert reset.stdout.startswith("per-user: 0/5 per minute, 5 left")
    assert reset.stdout.rstrip().endswith("reset 1 limit: per-user")


def test_cli_quota_lists_every_limit_of_a_descriptor_and_says_which_it_reset(
    admin_cli: Callable[..., CliResult],
) -> None:
    read = admin_cli("quota", "--domain", "api", "--entry", "tenant=globex")
    reset = admin_cli("quota", "--domain", "api", "--entry", "tenant=globex", "--reset")

    assert read.code == 0, read.stderr
    lines = read.stdout.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "per-second: 0/10 per second",
        "per-day: 0/1000 per day",
        "per-30s: 0/50 per 30s",
    ], lines
    assert reset.stdout.splitlines()[-1] == "reset 3 limits: per-second, per-day, per-30s"


@pytest.mark.parametrize("token", ["not-the-admin-token", None], ids=["wrong", "missing"])
def test_cli_exits_1_with_a_clear_message_when_refused(
    service: RunningService, token: str | None
) -> None:
    result = cli(service, "status", token=token)

    assert result.code == 1
    assert result.stdout == ""
    assert result.stderr.strip() == "error: UNAUTHENTICATED: admin token required"
    if token is not None:
        assert token not in result.stderr


def test_cli_exits_1_when_the_service_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTHZ_ADMIN_TOKEN", ADMIN_TOKEN)

    code = main(["admin", "--address", f"127.0.0.1:{free_port()}", "--timeout", "2", "status"])

    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err.startswith("error: UNAVAILABLE: ")
