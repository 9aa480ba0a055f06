"""Secrets that guard side doors: the metrics token, and Redis credentials kept out of config."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from authz_service.http.observability_server import ObservabilityServer
from authz_service.ratelimit.redis_store import RedisStore
from authz_service.ratelimit.store import Hit
from authz_service.schema import RedisSettings
from authz_service.telemetry.metrics import Metrics
from tests.support import find_binary, free_port, wait_for_port

pytestmark = pytest.mark.redis

METRICS_TOKEN = "metrics-scraper-token"
REDIS_PASSWORD = "redis-test-password"


async def test_metrics_need_the_token_when_configured_but_health_stays_open() -> None:
    server = ObservabilityServer(
        Metrics(),
        lambda: (True, {}),
        "sha256:" + hashlib.sha256(METRICS_TOKEN.encode()).hexdigest(),
    )
    await server.start("127.0.0.1:0")
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            anonymous = await client.get(base + "/metrics")
            wrong = await client.get(base + "/metrics", headers={"authorization": "Bearer nope"})
            right = await client.get(
                base + "/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}
            )
            health = await client.get(base + "/healthz")
    finally:
        await server.stop()

    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    assert right.status_code == 200
    assert "authz_rpc_duration_seconds" in right.text
    assert health.status_code == 200


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [find_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--requirepass", REDIS_PASSWORD],
        stdout=subprocess.DEVNULL,
        cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_for_port(port)
        yield port
    finally:
        process.kill()
        process.wait()


def hit() -> Hit:
    return Hit(key="k", algorithm="fixed_window", limit=5, window_s=60, hits=1)


async def test_redis_password_from_a_file_and_from_the_environment(
    redis_with_password: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"redis://127.0.0.1:{redis_with_password}/0"
    secret_file = tmp_path / "redis-password"
    secret_file.write_text(REDIS_PASSWORD + "\n")
    monkeypatch.setenv("AUTHZ_TEST_REDIS_PASSWORD", REDIS_PASSWORD)

    for settings in (
        RedisSettings(url=url, password_file=secret_file, timeout_ms=2000),
        RedisSettings(url=url, password_env="AUTHZ_TEST_REDIS_PASSWORD", timeout_ms=2000),
    ):
        store = RedisStore.from_settings(settings)
        try:
            (verdict,) = await store.apply([hit()], 100.0)
        finally:
            await store.close()
        assert verdict.allowed


async def test_redis_without_the_password_is_refused(redis_with_password: int) -> None:
    store = RedisStore.from_settings(
        RedisSettings(url=f"redis://127.0.0.1:{redis_with_password}/0", timeout_ms=2000)
    )
    try:
        with pytest.raises(Exception, match=r"(?i)auth"):
            await store.apply([hit()], 100.0)
    finally:
        await store.close()


def test_only_one_password_source_is_accepted() -> None:
    with pytest.raises(ValueError, match="at most one of password, password_file, password_env"):
        RedisSettings(password="x", password_env="Y")
