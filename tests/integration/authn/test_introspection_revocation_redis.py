"""Revocation and introspection agree across replicas: an opaque token revoked through one
replica (by its digest, into the shared Redis revocation store) is refused by another whose
cache still holds the issuer's active answer, as soon as the revocation is published."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from authz_service.authn.introspection_cache import token_digest
from authz_service.authn.introspection_registry import IntrospectionRegistry
from authz_service.authn.jwks_registry import JwksRegistry
from authz_service.authn.revocation import RedisRevocationStore
from authz_service.config.loader import load_config_file
from authz_service.decisions import Outcome, Reason
from authz_service.ratelimit.redis_store import create_client
from authz_service.schema import RedisSettings, RevocationSettings
from authz_service.services.check import CheckService
from authz_service.services.compiled_config import (
    CompiledConfig,
    QuotaStoreHolder,
    compile_config,
)
from tests.integration.authn.test_introspection import SECRET_ENV, bearer, check_config
from tests.support import redis as redis_support
from tests.support.idp import wait_until
from tests.support.introspection_endpoint import (
    CLIENT_SECRET,
    IntrospectionEndpoint,
    running_endpoint,
)
from tests.support.redis import RedisServer

pytestmark = pytest.mark.redis
redis_server = redis_support.redis_server  # the fixture, for this module


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[IntrospectionEndpoint]:
    monkeypatch.setenv(SECRET_ENV, CLIENT_SECRET)
    with running_endpoint() as served:
        yield served


def _same(compiled: CompiledConfig) -> CompiledConfig:
    return compiled


class Replica:
    def __init__(self, service: CheckService, store: RedisRevocationStore) -> None:
        self.service, self.store = service, store

    async def reason(self, token: str) -> Reason:
        return (await self.service.check(bearer(token))).decision.reason


@pytest.fixture
async def replicas(
    tmp_path: Path, endpoint: IntrospectionEndpoint, redis_server: RedisServer
) -> AsyncIterator[tuple[Replica, Replica]]:
    settings = RevocationSettings(
        store="redis",
        redis=RedisSettings(url=redis_server.url, key_prefix=f"t{uuid.uuid4().hex[:8]}:"),
        sync_interval_s=300,  # only pub/sub can explain a refusal within the test
    )
    loaded = load_config_file(check_config(tmp_path, endpoint.url))
    built: list[tuple[Replica, IntrospectionRegistry]] = []
    for _ in range(2):
        verifiers = IntrospectionRegistry()
        compiled = compile_config(loaded, JwksRegistry(), QuotaStoreHolder(), verifiers)
        store = RedisRevocationStore(settings, create_client)
        await store.start()
        current: Callable[[], CompiledConfig] = functools.partial(_same, compiled)
        built.append((Replica(CheckService(current, store.revocations), store), verifiers))
    try:
        yield built[0][0], built[1][0]
    finally:
        for replica, verifiers in built:
            await replica.store.close()
            await verifiers.close()


async def test_a_token_revoked_on_one_replica_is_refused_by_another_holding_it_cached(
    replicas: tuple[Replica, Replica], endpoint: IntrospectionEndpoint
) -> None:
    first, second = replicas
    endpoint.issue("tok-shared-revocation", sub="alice", scope="orders:read")
    assert await second.reason("tok-shared-revocation") is Reason.ALLOWED
    await first.store.revoke_jti(token_digest("tok-shared-revocation"), time.time() + 60)

    await wait_until(lambda: len(second.store.revocations) == 1, within_s=2.0)

    decision = (await second.service.check(bearer("tok-shared-revocation"))).decision
    assert (decision.outcome, decision.reason) == (Outcome.UNAUTHENTICATED, Reason.TOKEN_REVOKED)
    assert endpoint.calls_for("tok-shared-revocation") == 1  # the second replica's cached answer
