"""The Redis store over TLS (`rediss://`, `rate_limit.redis.tls`) against a real redis-server
with TLS on, client certificates required: counting works, and a server the configured CA
did not sign, or a client without its certificate, gets no answer (StoreUnavailable)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from authz_service.ratelimit.factory import build_limiter
from authz_service.ratelimit.results import Code, Descriptor, RateLimitRequestData
from authz_service.ratelimit.rules import compile_rules, parse_domain_document
from authz_service.ratelimit.store import StoreUnavailable
from authz_service.schema import RateLimitSettings
from tests.support import find_binary, free_port, wait_for_port
from tools.dev_cert import generate

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("fresh_minute")]

LIMITS = """
domain: api
descriptors:
  - key: user
    rate_limit: {unit: minute, requests_per_unit: 5}
"""


@dataclass
class TlsRedis:
    port: int
    certs: Path  # ca.crt, authz.crt/key: the server's certificate and the client's


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    workdir = tmp_path_factory.mktemp("redis-tls")
    certs = generate(workdir / "certs")
    port = free_port()
    process = subprocess.Popen(
        [
            find_binary("redis-server"),
            "--port", "0",
            "--tls-port", str(port),
            "--bind", "127.0.0.1",
            "--tls-cert-file", str(certs / "authz.crt"),
            "--tls-key-file", str(certs / "authz.key"),
            "--tls-ca-cert-file", str(certs / "ca.crt"),
            "--tls-auth-clients", "yes",
            "--save", "",
            "--dir", str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        yield TlsRedis(port, certs)
    finally:
        process.kill()
        process.wait(timeout=10)


def settings(redis: TlsRedis, **tls: Path) -> RateLimitSettings:
    return RateLimitSettings.model_validate(
        {
            "store": "redis",
            "redis": {
                "url": f"rediss://127.0.0.1:{redis.port}/0",
                "key_prefix": f"tls{uuid.uuid4().hex[:6]}:",
                "timeout_ms": 2000,
                "connect_timeout_ms": 2000,
                "tls": {key: str(value) for key, value in tls.items()},
            },
            "local_over_limit_cache": False,
        }
    )


async def remaining_after_calls(settings: RateLimitSettings, calls: int) -> list[int]:
    limiter = build_limiter(settings, compile_rules([parse_domain_document(LIMITS, "api")]))
    request = RateLimitRequestData("api", (Descriptor((("user", "alice"),)),))
    try:
        results = [await limiter.should_rate_limit(request) for _ in range(calls)]
    finally:
        await limiter.close()
    assert all(r.overall_code is Code.OK for r in results)
    return [r.statuses[0].limit_remaining for r in results]


async def test_counts_over_tls_with_a_client_certificate(tls_redis: TlsRedis) -> None:
    certs = tls_redis.certs
    mutual = settings(
        tls_redis,
        ca_file=certs / "ca.crt",
        cert_file=certs / "authz.crt",
        key_file=certs / "authz.key",
    )
    assert await remaining_after_calls(mutual, 3) == [4, 3, 2]


async def test_a_server_certificate_from_another_ca_is_refused(
    tls_redis: TlsRedis, tmp_path: Path
) -> None:
    other_ca = generate(tmp_path / "other") / "ca.crt"
    certs = tls_redis.certs
    untrusted = settings(
        tls_redis, ca_file=other_ca, cert_file=certs / "authz.crt", key_file=certs / "authz.key"
    )
    with pytest.raises(StoreUnavailable):
        await remaining_after_calls(untrusted, 1)


async def test_without_a_client_certificate_the_server_refuses(tls_redis: TlsRedis) -> None:
    anonymous = settings(tls_redis, ca_file=tls_redis.certs / "ca.crt")
    with pytest.raises(StoreUnavailable):
        await remaining_after_calls(anonymous, 1)
