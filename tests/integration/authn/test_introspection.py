"""Opaque tokens against a real RFC 7662 endpoint on 127.0.0.1 (tests/support): client
authentication, caching, single-flight, the concurrency bound, and every way the endpoint can
fail (a 503 `introspection_unavailable`, never an allow, logged without the token). Then the
whole Check: the token's claims reach RBAC, and a token revoked through our revocation path
is refused at once although its active answer is cached."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from authz_service.authn.introspection import IntrospectionVerifier
from authz_service.authn.introspection_cache import token_digest
from authz_service.authn.introspection_registry import IntrospectionRegistry, figures_of
from authz_service.authn.jwks_registry import JwksRegistry
from authz_service.authn.revocation import RevocationList
from authz_service.config.loader import ConfigError, load_config_file
from authz_service.decisions import AuthnFailure, Identity, Outcome, Reason, RequestAttributes
from authz_service.schema import IntrospectionProvider
from authz_service.services.check import CheckService
from authz_service.services.compiled_config import QuotaStoreHolder, compile_config
from authz_service.telemetry.introspection_metrics import IntrospectionCollector
from tests.support.authz_config import write_config
from tests.support.idp import wait_until
from tests.support.introspection_endpoint import (
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    IntrospectionEndpoint,
    running_endpoint,
)
from tools.processes import free_port

SECRET_ENV = "AUTHZ_TEST_INTROSPECTION_SECRET"


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[IntrospectionEndpoint]:
    monkeypatch.setenv(SECRET_ENV, CLIENT_SECRET)
    with running_endpoint() as served:
        yield served


def settings(url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "opaque",
        "issuer": ISSUER,
        "introspection_endpoint": url,
        "client_id": CLIENT_ID,
        "client_secret_env": SECRET_ENV,
        **overrides,
    }


def verifier(url: str, **overrides: Any) -> IntrospectionVerifier:
    return IntrospectionVerifier(IntrospectionProvider.model_validate(settings(url, **overrides)))


def reason(result: Identity | AuthnFailure) -> Reason:
    assert isinstance(result, AuthnFailure), result
    return result.reason


@pytest.mark.parametrize("client_auth", ["client_secret_basic", "client_secret_post"])
async def test_an_active_token_is_introspected_once_then_served_from_the_cache(
    endpoint: IntrospectionEndpoint, client_auth: str
) -> None:
    endpoint.issue("tok-active", sub="alice", scope="orders:read")
    checker = verifier(endpoint.url, client_auth=client_auth)
    try:
        first = await checker.verify("tok-active")
        second = await checker.verify("tok-active")
    finally:
        await checker.close()
    assert isinstance(first, Identity) and first.principal == "alice"
    assert first.scopes == {"orders:read"}
    assert second == first
    assert endpoint.calls_for("tok-active") == 1
    assert endpoint.auth_methods == [client_auth]
    assert endpoint.hints == ["access_token"]


async def test_an_inactive_answer_is_refused_and_cached_briefly(
    endpoint: IntrospectionEndpoint,
) -> None:
    checker = verifier(endpoint.url, cache={"inactive_s": 60})
    try:
        assert reason(await checker.verify("unknown")) is Reason.TOKEN_INACTIVE
        assert reason(await checker.verify("unknown")) is Reason.TOKEN_INACTIVE
    finally:
        await checker.close()
    assert endpoint.calls_for("unknown") == 1


async def test_concurrent_requests_with_one_token_share_one_call(
    endpoint: IntrospectionEndpoint,
) -> None:
    endpoint.issue("tok-shared", sub="alice")
    checker = verifier(endpoint.url)
    endpoint.hold()
    try:
        callers = asyncio.gather(*(checker.verify("tok-shared") for _ in range(20)))
        await wait_until(lambda: endpoint.calls_for("tok-shared") == 1)
        endpoint.release()
        results = await callers
    finally:
        await checker.close()
    assert all(isinstance(result, Identity) for result in results)
    assert endpoint.calls_for("tok-shared") == 1


async def test_calls_in_flight_are_bounded(endpoint: IntrospectionEndpoint) -> None:
    tokens = [f"tok-{index}" for index in range(5)]
    for token in tokens:
        endpoint.issue(token, sub="alice")
    checker = verifier(endpoint.url, max_concurrent=2, timeout_s=10)
    endpoint.hold()
    try:
        callers = asyncio.gather(*(checker.verify(token) for token in tokens))
        await wait_until(lambda: endpoint.total_calls() == 2)
        await asyncio.sleep(0.2)
        held = endpoint.total_calls()
        endpoint.release()
        results = await callers
    finally:
        await checker.close()
    assert held == 2
    assert all(isinstance(result, Identity) for result in results)
    assert endpoint.total_calls() == 5


async def test_a_slow_endpoint_is_a_timeout_not_an_allow_and_is_not_cached(
    endpoint: IntrospectionEndpoint,
) -> None:
    endpoint.issue("tok-slow", sub="alice")
    checker = verifier(endpoint.url, timeout_s=0.3)
    endpoint.hold()
    try:
        assert reason(await checker.verify("tok-slow")) is Reason.INTROSPECTION_UNAVAILABLE
        endpoint.release()
        assert isinstance(await checker.verify("tok-slow"), Identity)
    finally:
        await checker.close()


@pytest.mark.parametrize("mode", ["5xx", "garbage", "no_active", "huge"])
async def test_an_unusable_answer_is_unavailable_and_logged_without_the_token(
    endpoint: IntrospectionEndpoint, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint.issue("tok-secret-value", sub="alice")
    endpoint.mode = mode
    checker = verifier(endpoint.url)
    try:
        with caplog.at_level(logging.WARNING):
            result = await checker.verify("tok-secret-value")
    finally:
        await checker.close()
    assert reason(result) is Reason.INTROSPECTION_UNAVAILABLE
    assert "introspection provider opaque" in caplog.text
    assert "tok-secret-value" not in caplog.text


async def test_an_endpoint_that_is_down_is_unavailable(endpoint: IntrospectionEndpoint) -> None:
    down = verifier(f"http://127.0.0.1:{free_port()}/token/introspection")
    try:
        assert reason(await down.verify("tok")) is Reason.INTROSPECTION_UNAVAILABLE
    finally:
        await down.close()


async def test_a_wrong_client_secret_is_unavailable_not_inactive_and_logged_as_such(
    endpoint: IntrospectionEndpoint,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint.issue("tok", sub="alice")
    monkeypatch.setenv(SECRET_ENV, "not-the-secret")
    checker = verifier(endpoint.url)
    try:
        with caplog.at_level(logging.WARNING):
            assert reason(await checker.verify("tok")) is Reason.INTROSPECTION_UNAVAILABLE
    finally:
        await checker.close()
    assert f"HTTP 401: the endpoint refused our client {CLIENT_ID!r}" in caplog.text
    assert "not-the-secret" not in caplog.text


# -- the whole Check -----------------------------------------------------------------------


def check_config(tmp_path: Path, url: str, **cache: Any) -> Path:
    document = {
        "introspection_providers": [settings(url, cache=cache or {"active_max_s": 300})],
        "policies": {
            "default": {
                "rules": [
                    {
                        "name": "orders",
                        "match": {"paths": [{"prefix": "/orders"}]},
                        "allow": {"scopes_all": ["orders:read"]},
                    }
                ]
            }
        },
    }
    return write_config(tmp_path / "authz.yaml", document)


def bearer(token: str) -> RequestAttributes:
    return RequestAttributes(
        method="GET", host="api.test", path="/orders", headers={"authorization": f"Bearer {token}"}
    )


@pytest.fixture
async def checks(
    tmp_path: Path, endpoint: IntrospectionEndpoint
) -> AsyncIterator[tuple[CheckService, RevocationList]]:
    verifiers = IntrospectionRegistry()
    loaded = load_config_file(check_config(tmp_path, endpoint.url))
    compiled = compile_config(loaded, JwksRegistry(), QuotaStoreHolder(), verifiers)
    revocations = RevocationList()
    try:
        yield CheckService(lambda: compiled, revocations), revocations
    finally:
        await verifiers.close()


async def test_an_opaque_tokens_scopes_reach_the_policy(
    checks: tuple[CheckService, RevocationList], endpoint: IntrospectionEndpoint
) -> None:
    service, _ = checks
    endpoint.issue("tok-reader", sub="alice", scope="orders:read")
    endpoint.issue("tok-other", sub="bob", scope="billing:read")
    allowed = (await service.check(bearer("tok-reader"))).decision
    denied = (await service.check(bearer("tok-other"))).decision
    assert allowed.outcome is Outcome.ALLOW and allowed.identity is not None
    assert allowed.identity.principal == "alice"
    assert (denied.outcome, denied.reason) == (Outcome.FORBIDDEN, Reason.MISSING_SCOPE)


async def test_a_token_revoked_through_our_path_is_refused_at_once_though_cached(
    checks: tuple[CheckService, RevocationList], endpoint: IntrospectionEndpoint
) -> None:
    service, revocations = checks
    endpoint.issue("tok-revoke-me", sub="alice", scope="orders:read")
    assert (await service.check(bearer("tok-revoke-me"))).decision.allowed
    revocations.add_jti(token_digest("tok-revoke-me"), expires_at=2**31)
    decision = (await service.check(bearer("tok-revoke-me"))).decision
    assert (decision.outcome, decision.reason) == (Outcome.UNAUTHENTICATED, Reason.TOKEN_REVOKED)
    assert endpoint.calls_for("tok-revoke-me") == 1  # the cached answer did not let it through


async def test_an_endpoint_outage_answers_503(
    checks: tuple[CheckService, RevocationList], endpoint: IntrospectionEndpoint
) -> None:
    service, _ = checks
    endpoint.mode = "5xx"
    decision = (await service.check(bearer("tok-during-outage"))).decision
    assert (decision.outcome, decision.reason) == (
        Outcome.UNAVAILABLE,
        Reason.INTROSPECTION_UNAVAILABLE,
    )


async def test_explain_names_the_opaque_credential_and_its_decision(
    checks: tuple[CheckService, RevocationList], endpoint: IntrospectionEndpoint
) -> None:
    service, _ = checks
    endpoint.issue("tok-explained", sub="alice", scope="orders:read")
    explanation = await service.explain(bearer("tok-explained"))
    assert explanation.credential == "opaque token from header authorization, introspected"
    assert explanation.decision.allowed
    assert "tok-explained" not in repr(explanation)


async def test_a_reload_keeps_a_providers_verifier_and_replaces_a_changed_one(
    endpoint: IntrospectionEndpoint,
) -> None:
    registry = IntrospectionRegistry()
    provider = IntrospectionProvider.model_validate(settings(endpoint.url))
    changed = IntrospectionProvider.model_validate(settings(endpoint.url, timeout_s=1.5))
    try:
        first = registry.prepare([provider])["opaque"]
        endpoint.issue("tok-kept", sub="alice")
        assert isinstance(await first.verify("tok-kept"), Identity)
        assert registry.prepare([provider])["opaque"] is first  # its cache survives a reload
        second = registry.prepare([changed])["opaque"]
        await registry.retain_only([changed])
        assert second is not first
        assert isinstance(await second.verify("tok-kept"), Identity)
        assert endpoint.calls_for("tok-kept") == 2  # the new verifier starts with no cache
    finally:
        await registry.close()


async def test_metrics_count_answered_and_failed_calls_and_cache_lookups(
    endpoint: IntrospectionEndpoint,
) -> None:
    endpoint.issue("tok-counted", sub="alice")
    checker = verifier(endpoint.url)
    registry = CollectorRegistry()
    registry.register(IntrospectionCollector(lambda: figures_of([checker])))
    try:
        await checker.verify("tok-counted")
        await checker.verify("tok-counted")
        endpoint.mode = "5xx"
        await checker.verify("tok-during-5xx")
    finally:
        await checker.close()

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"provider": "opaque", **labels})

    assert sample("authz_introspection_calls_total", result="answered") == 1
    assert sample("authz_introspection_calls_total", result="failed") == 1
    assert sample("authz_introspection_cache_lookups_total", result="hit") == 1
    assert sample("authz_introspection_cache_lookups_total", result="miss") == 2
    assert sample("authz_introspection_cache_entries") == 1


async def test_a_rotated_client_secret_is_used_from_the_next_reload(
    endpoint: IntrospectionEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = IntrospectionRegistry()
    provider = IntrospectionProvider.model_validate(settings(endpoint.url))
    endpoint.issue("tok-rotation", sub="alice")
    monkeypatch.setenv(SECRET_ENV, "the-old-secret")
    try:
        old = registry.prepare([provider])["opaque"]
        assert reason(await old.verify("tok-rotation")) is Reason.INTROSPECTION_UNAVAILABLE
        monkeypatch.setenv(SECRET_ENV, CLIENT_SECRET)  # rotated, then a reload
        new = registry.prepare([provider])["opaque"]
        await registry.retain_only([provider])
        assert new is not old
        assert isinstance(await new.verify("tok-rotation"), Identity)
    finally:
        await registry.close()


async def test_a_provider_limited_to_a_policy_introspects_only_its_requests(
    tmp_path: Path, endpoint: IntrospectionEndpoint
) -> None:
    open_rule = {"rules": [{"name": "any", "allow": "authenticated"}]}
    document = {
        "introspection_providers": [settings(endpoint.url, policies=["internal"])],
        "policies": {"default": open_rule, "internal": open_rule},
    }
    verifiers = IntrospectionRegistry()
    loaded = load_config_file(write_config(tmp_path / "authz.yaml", document))
    compiled = compile_config(loaded, JwksRegistry(), QuotaStoreHolder(), verifiers)
    service = CheckService(lambda: compiled)
    endpoint.issue("tok-internal", sub="svc")
    internal = RequestAttributes(
        method="GET",
        host="api.test",
        path="/orders",
        headers={"authorization": "Bearer tok-internal"},
        context={"policy": "internal"},
    )
    try:
        public = (await service.check(bearer("tok-internal"))).decision
        inside = (await service.check(internal)).decision
    finally:
        await verifiers.close()
    assert (public.outcome, public.reason) == (Outcome.UNAUTHENTICATED, Reason.MALFORMED_TOKEN)
    assert inside.allowed
    assert endpoint.calls_for("tok-internal") == 1


def test_a_provider_naming_an_unknown_policy_is_a_config_error(tmp_path: Path) -> None:
    document = {
        "introspection_providers": [settings("https://issuer.test/i", policies=["nope"])],
        "policies": {"default": {"rules": [{"name": "any", "allow": "authenticated"}]}},
    }
    with pytest.raises(
        ConfigError, match=r"introspection_providers\.0\.policies: .*no policy 'nope'"
    ):
        load_config_file(write_config(tmp_path / "authz.yaml", document))


def test_one_verifier_serves_callers_on_successive_event_loops(
    endpoint: IntrospectionEndpoint,
) -> None:
    """Offline tools run one loop per command: a loop's connections are not used by the next."""
    endpoint.issue("tok-loop-a", sub="alice")
    endpoint.issue("tok-loop-b", sub="bob")
    checker = verifier(endpoint.url)
    first_loop = asyncio.new_event_loop()
    first_session = None
    try:
        first = first_loop.run_until_complete(checker.verify("tok-loop-a"))
        first_session = checker.client._session  # still open, bound to the first loop

        async def verify_and_close() -> Identity | AuthnFailure:
            try:
                return await checker.verify("tok-loop-b")
            finally:
                await checker.client.close()

        second = asyncio.run(verify_and_close())
    finally:
        if first_session is not None:
            first_loop.run_until_complete(first_session.close())
        first_loop.close()
    assert isinstance(first, Identity) and isinstance(second, Identity)
    assert second.principal == "bob"
