"""JwksCache against a real JWKS served over HTTP on loopback by the development IdP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from authz_service.authn.jwks import JwksCache
from authz_service.schema import JwksSettings
from tests.support.idp import FakeClock, wait_until
from tools.dev_idp import DevIdentityProvider

SETTINGS = JwksSettings(
    refresh_interval_s=300,
    min_refetch_interval_s=10,
    fetch_timeout_s=1.0,
    max_response_bytes=100_000,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def cache(idp: DevIdentityProvider, clock: FakeClock) -> AsyncIterator[JwksCache]:
    jwks = JwksCache(idp.jwks_uri, SETTINGS, clock=clock)
    yield jwks
    await jwks.close()


async def warmed(cache: JwksCache, idp: DevIdentityProvider) -> str:
    kid = idp.signing_key.kid
    assert await cache.get_key(kid) is not None
    return kid


async def test_first_lookup_fetches_the_published_keys(
    cache: JwksCache, idp: DevIdentityProvider
) -> None:
    key = await cache.get_key(idp.signing_key.kid)
    assert key is not None
    assert key.algorithm_name == "RS256"
    assert cache.state().key_ids == (idp.signing_key.kid,)
    assert (cache.fetch_count, idp.requests) == (1, 1)


async def test_known_kid_is_served_from_the_cache(
    cache: JwksCache, idp: DevIdentityProvider
) -> None:
    kid = await warmed(cache, idp)
    for _ in range(5):
        assert await cache.get_key(kid) is not None
    assert idp.requests == 1


async def test_unknown_kid_from_50_concurrent_callers_causes_exactly_one_refetch(
    cache: JwksCache, idp: DevIdentityProvider, clock: FakeClock
) -> None:
    await warmed(cache, idp)
    new_key = idp.rotate()
    clock.advance(SETTINGS.min_refetch_interval_s + 1)
    idp.delay_s = 0.05  # keep the fetch in flight while every caller arrives

    keys = await asyncio.gather(*(cache.get_key(new_key.kid) for _ in range(50)))

    assert all(key is not None for key in keys)
    assert (cache.fetch_count, idp.requests) == (2, 2)


async def test_unknown_kid_is_not_refetched_again_within_the_minimum_interval(
    cache: JwksCache, idp: DevIdentityProvider, clock: FakeClock
) -> None:
    await warmed(cache, idp)
    clock.advance(SETTINGS.min_refetch_interval_s + 1)
    assert await cache.get_key("no-such-kid") is None
    assert idp.requests == 2

    newer = idp.rotate()
    clock.advance(SETTINGS.min_refetch_interval_s - 1)
    assert await cache.get_key(newer.kid) is None
    assert await cache.get_key("no-such-kid") is None
    assert idp.requests == 2

    clock.advance(2)
    assert await cache.get_key(newer.kid) is not None
    assert idp.requests == 3


async def test_keys_keep_working_while_the_endpoint_fails(
    cache: JwksCache, idp: DevIdentityProvider, clock: FakeClock
) -> None:
    kid = await warmed(cache, idp)
    idp.fail_status = 500
    clock.advance(SETTINGS.min_refetch_interval_s + 1)

    assert await cache.get_key("unknown") is None
    assert await cache.get_key(kid) is not None
    state = cache.state()
    assert state.key_ids == (kid,)
    assert state.last_error.endswith("HTTP 500")
    assert cache.failure_count == 1


async def test_hanging_endpoint_costs_a_caller_at_most_the_fetch_timeout(
    cache: JwksCache, idp: DevIdentityProvider, clock: FakeClock
) -> None:
    kid = await warmed(cache, idp)
    idp.delay_s = 4.0
    clock.advance(SETTINGS.min_refetch_interval_s + 1)

    started = time.monotonic()
    assert await cache.get_key("unknown") is None
    elapsed = time.monotonic() - started

    assert elapsed < SETTINGS.fetch_timeout_s + 0.1 + 0.4
    assert await cache.get_key(kid) is not None
    # The shared fetch gives up on its own too, and says why.
    for _ in range(50):
        if cache.state().last_error:
            break
        await asyncio.sleep(0.02)
    assert cache.state().last_error == "timed out"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"<html>oops</html>", "not JSON"),
        (b'{"keys": "nope"}', "not a JWK set"),
        (b'{"keys": []}', "no usable signing key"),
        (b'{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]}', "no usable signing key"),
    ],
)
async def test_garbage_from_the_endpoint_keeps_the_cached_keys(
    cache: JwksCache, idp: DevIdentityProvider, clock: FakeClock, body: bytes, error: str
) -> None:
    kid = await warmed(cache, idp)
    idp.garbage_body = body
    clock.advance(SETTINGS.min_refetch_interval_s + 1)

    assert await cache.get_key("unknown") is None
    assert await cache.get_key(kid) is not None
    assert error in cache.state().last_error


async def test_oversized_response_is_refused(idp: DevIdentityProvider, clock: FakeClock) -> None:
    small = SETTINGS.model_copy(update={"max_response_bytes": 100})
    jwks = JwksCache(idp.jwks_uri, small, clock=clock)
    try:
        assert await jwks.get_key(idp.signing_key.kid) is None
        assert "larger than 100 bytes" in jwks.state().last_error
    finally:
        await jwks.close()


async def test_background_refresh_fetches_at_start_and_picks_up_rotation(
    idp: DevIdentityProvider,
) -> None:
    fast = SETTINGS.model_copy(update={"refresh_interval_s": 0.1})
    jwks = JwksCache(idp.jwks_uri, fast)
    jwks.start()
    try:
        await wait_until(lambda: idp.signing_key.kid in jwks.keys)
        new_key = idp.rotate()
        await wait_until(lambda: new_key.kid in jwks.keys)
        assert jwks.keys[new_key.kid].key_id == new_key.kid
    finally:
        await jwks.close()
    requests = idp.requests
    await asyncio.sleep(0.25)
    assert idp.requests == requests  # closed: no more fetching


async def test_discovery_finds_the_jwks_uri_from_the_issuer(
    idp: DevIdentityProvider, clock: FakeClock
) -> None:
    idp.issuer = f"http://127.0.0.1:{idp.port}"
    jwks = JwksCache(idp.issuer, SETTINGS, discovery_issuer=idp.issuer, clock=clock)
    try:
        assert await jwks.get_key(idp.signing_key.kid) is not None
        assert idp.requests == 2  # the discovery document, then the JWKS
        clock.advance(SETTINGS.min_refetch_interval_s + 1)
        await jwks.refetch_if_allowed()
        assert idp.requests == 3  # the jwks_uri is remembered
    finally:
        await jwks.close()


async def test_discovery_document_naming_another_issuer_is_refused(
    idp: DevIdentityProvider, clock: FakeClock
) -> None:
    expected = f"http://127.0.0.1:{idp.port}"
    idp.issuer = "https://impostor.example"
    jwks = JwksCache(expected, SETTINGS, discovery_issuer=expected, clock=clock)
    try:
        assert await jwks.get_key(idp.signing_key.kid) is None
        assert jwks.keys == {}
        assert "discovery names issuer 'https://impostor.example'" in jwks.state().last_error
        assert idp.requests == 1  # the JWKS it points at was never fetched
    finally:
        await jwks.close()
