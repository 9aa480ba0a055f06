"""Token revocation shared through a real Redis by separate service processes.

A revocation made through the admin API of one process is written to Redis and published;
every other process applies it at once (pub/sub), and a process started later reads it at
start (sync).
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
import jwt
import pytest
from envoy.service.auth.v3 import external_auth_pb2_grpc
from google.rpc import code_pb2

from authz_service.admin.v1 import admin_pb2, admin_pb2_grpc
from authz_service.authn import revocation
from authz_service.authn.revocation import RedisRevocationStore
from authz_service.decisions import AuthMethod, Identity
from authz_service.ratelimit.redis_store import create_client
from authz_service.schema import RedisSettings, RevocationSettings
from tests.integration.admin.test_admin_api import (
    ADMIN_TOKEN_HASH,
    AUTHORIZED,
    admin_config,
    check_request,
)
from tests.support import find_binary, free_port
from tests.support.authz_config import write_config
from tests.support.idp import running_idp, wait_until
from tests.support.redis import RedisServer
from tools.dev_idp import DevIdentityProvider
from tools.processes import Process, start_authz, wait_for_port

pytestmark = pytest.mark.redis


@dataclass
class Replica:
    process: Process
    port: int
    admin_port: int

    def check(self, token: str) -> tuple[int, str]:
        """(gRPC status code of the Check answer, reason code or "")."""
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = external_auth_pb2_grpc.AuthorizationStub(channel)
            response = stub.Check(check_request("/api/items", token), timeout=5)
        body = response.denied_response.body
        return response.status.code, json.loads(body)["reason"] if body else ""

    def revoke(self, request: Any) -> Any:
        with grpc.insecure_channel(f"127.0.0.1:{self.admin_port}") as channel:
            stub = admin_pb2_grpc.AdminServiceStub(channel)
            return stub.Revoke(request, metadata=AUTHORIZED, timeout=5)


@dataclass
class Cluster:
    redis: RedisServer
    idp: DevIdentityProvider
    workdir: Path
    prefix: str
    replicas: list[Replica]

    def start_replica(self, *, wait_until_subscribed: bool = True) -> Replica:
        port, admin_port = free_port(), free_port()
        config = admin_config(self.idp, listen=f"127.0.0.1:{admin_port}")
        config["server"]["listen"] = f"127.0.0.1:{port}"
        config["revocation"] = {
            "store": "redis",
            "redis": {"url": self.redis.url, "key_prefix": self.prefix},
            # Long enough that only pub/sub or the sync at start can explain what we see.
            "sync_interval_s": 300,
            "max_token_lifetime_s": 3600,
        }
        name = f"authz{len(self.replicas)}"
        path = write_config(self.workdir / f"{name}.yaml", config)
        process = start_authz(path, port, self.workdir, name=name)
        self.replicas.append(Replica(process, port, admin_port))
        wait_for_port(admin_port, process=process.popen)
        if wait_until_subscribed:
            self._wait_until_subscribed()
        return self.replicas[-1]

    def _wait_until_subscribed(self) -> None:
        """Every replica listens on the revocation channel (what the ~1 s bound relies on)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            reply = self.redis.cli("PUBSUB", "NUMSUB", f"{self.prefix}events").split()
            if int(reply[-1]) == len(self.replicas):
                return
            time.sleep(0.02)
        raise AssertionError("the replicas did not subscribe to the revocation channel")


@pytest.fixture(scope="module")
def redis(redis_server: RedisServer) -> RedisServer:
    return redis_server


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis: RedisServer) -> Iterator[Cluster]:
    with running_idp() as idp:
        running = Cluster(
            redis, idp, tmp_path_factory.mktemp("replicas"), f"t{uuid.uuid4().hex[:8]}:", []
        )
        try:
            running.start_replica()
            running.start_replica()
            yield running
        finally:
            for replica in running.replicas:
                replica.process.stop()


def jti_of(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


def wait_for_reason(replica: Replica, token: str, reason: str, within_s: float) -> float:
    """Seconds until `replica` answers `reason` for `token`; fails after `within_s`."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if replica.check(token)[1] == reason:
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"still not {reason} after {within_s}s: {replica.check(token)}")


def test_a_jti_revoked_through_one_process_is_denied_by_another_within_a_second(
    cluster: Cluster,
) -> None:
    first, second = cluster.replicas[:2]
    token, other = cluster.idp.mint("alice"), cluster.idp.mint("alice")
    assert second.check(token) == (code_pb2.OK, "")

    first.revoke(admin_pb2.RevokeRequest(jti=jti_of(token), until_or_before_unix=time.time() + 60))

    assert wait_for_reason(second, token, "token_revoked", within_s=1.0) < 1.0
    assert first.check(token) == (code_pb2.UNAUTHENTICATED, "token_revoked")
    assert second.check(other) == (code_pb2.OK, "")
    # Stored in Redis with a TTL, so the entry ends when the token does.
    ttl_ms = int(cluster.redis.cli("PTTL", f"{cluster.prefix}jti:{jti_of(token)}"))
    assert 0 < ttl_ms <= 60_000


def test_a_process_started_after_a_revocation_denies_the_token_from_its_first_check(
    cluster: Cluster,
) -> None:
    token = cluster.idp.mint("bob")
    cluster.replicas[0].revoke(admin_pb2.RevokeRequest(jti=jti_of(token)))

    # Checked as soon as it listens: not after its subscription has caught up.
    late = cluster.start_replica(wait_until_subscribed=False)

    assert late.check(token) == (code_pb2.UNAUTHENTICATED, "token_revoked")


def test_a_subject_revocation_denies_older_tokens_everywhere_and_accepts_newer_ones(
    cluster: Cluster,
) -> None:
    first, second = cluster.replicas[:2]
    now = time.time()
    older = cluster.idp.mint("carol", now=now - 100)
    newer = cluster.idp.mint("carol")
    someone_else = cluster.idp.mint("dave", now=now - 100)
    assert second.check(older) == (code_pb2.OK, "")

    response = first.revoke(
        admin_pb2.RevokeRequest(
            subject="carol", issuer=cluster.idp.issuer, until_or_before_unix=now - 30
        )
    )

    assert response.expires_at_unix == pytest.approx(now + 3600, abs=30)
    wait_for_reason(second, older, "token_revoked", within_s=1.0)
    assert first.check(older) == (code_pb2.UNAUTHENTICATED, "token_revoked")
    assert second.check(newer) == (code_pb2.OK, "")
    assert second.check(someone_else) == (code_pb2.OK, "")


def test_a_subject_revoked_without_issuer_is_denied_for_its_issuer_too(cluster: Cluster) -> None:
    first, second = cluster.replicas[:2]
    older = cluster.idp.mint("erin", now=time.time() - 100)

    first.revoke(admin_pb2.RevokeRequest(subject="erin", until_or_before_unix=time.time() - 30))

    wait_for_reason(second, older, "token_revoked", within_s=1.0)
    assert second.check(cluster.idp.mint("erin")) == (code_pb2.OK, "")


def test_status_names_the_redis_revocation_store(cluster: Cluster) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{cluster.replicas[0].admin_port}") as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        status = stub.Status(admin_pb2.StatusRequest(), metadata=AUTHORIZED, timeout=5)
    assert status.revocation_store == "redis"
    assert ADMIN_TOKEN_HASH not in str(status)


async def test_a_replica_whose_redis_is_down_at_start_serves_and_catches_up_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(revocation, "_START_SYNC_TIMEOUT_S", 0.3)
    down = RedisServer(find_binary("redis-server"), tmp_path / "redis")  # not started yet
    settings = RevocationSettings(
        store="redis",
        redis=RedisSettings(url=down.url, key_prefix="late:"),
        sync_interval_s=300,
    )
    replica = RedisRevocationStore(settings, create_client)
    writer = RedisRevocationStore(settings, create_client)
    identity = Identity("zoe", AuthMethod.JWT, token_id="jti-late")
    started = time.monotonic()
    await replica.start()  # must not raise nor hang
    try:
        assert time.monotonic() - started < 2.0
        down.start()
        await writer.revoke_jti("jti-late", time.time() + 60)

        await wait_until(lambda: replica.revocations.is_revoked(identity), within_s=5.0)
    finally:
        await replica.close()
        await writer.close()
        down.kill()
