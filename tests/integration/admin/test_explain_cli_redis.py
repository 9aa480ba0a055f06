"""`authz-service explain --config FILE` reads the live counters of a config's Redis store."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from authz_service.authn.jwks_registry import JwksRegistry
from authz_service.cli.main import main
from authz_service.config.loader import load_config_file
from authz_service.services.compiled_config import QuotaStoreHolder, compile_config
from tests.support.authz_config import api_key_hash, write_config
from tests.support.redis import RedisServer

pytestmark = pytest.mark.redis

API_KEY = "explain-cli-key-7d1e"  # a test secret


def config(redis_url: str) -> dict[str, object]:
    return {
        "api_keys": {
            "keys": [{"name": "batch", "hash": api_key_hash(API_KEY), "principal": "svc:batch"}]
        },
        "policies": {
            "default": {
                "rules": [
                    {
                        "name": "jobs",
                        "match": {"paths": [{"prefix": "/jobs/"}]},
                        "allow": "authenticated",
                    }
                ]
            }
        },
        "rate_limit": {
            "store": "redis",
            "redis": {"url": redis_url, "key_prefix": f"x{uuid.uuid4().hex[:6]}:"},
            "domains": [
                {
                    "domain": "api",
                    "descriptors": [
                        {"key": "user", "rate_limit": {"unit": "hour", "requests_per_unit": 10}}
                    ],
                }
            ],
        },
        "check_quota": {
            "domain": "api",
            "descriptors": [{"entries": [{"key": "user", "source": "principal"}]}],
        },
    }


async def charge(path: Path, times: int) -> None:
    """What the running service's Check does: charge the caller's descriptor."""
    stores, registry = QuotaStoreHolder(), JwksRegistry()
    compiled = compile_config(load_config_file(path), registry, stores)
    assert compiled.limiter is not None
    try:
        for _ in range(times):
            await compiled.limiter.check_descriptors("api", [[("user", "svc:batch")]])
    finally:
        await stores.close()
        await registry.close()


def test_offline_explain_shows_the_counters_in_redis(
    redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path / "authz.yaml", config(redis_server.url))
    asyncio.run(charge(path, 3))

    argv = ["explain", "--config", str(path), "--path", "/jobs/1", "-H", f"x-api-key: {API_KEY}"]
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)

    assert report["decision"] == "allow"
    (descriptor,) = report["quota"]["descriptors"]
    assert descriptor["entries"] == [{"key": "user", "value": "svc:batch"}]
    assert (descriptor["code"], descriptor["remaining"]) == ("OK", 7)
    assert main([*argv, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["quota"]["descriptors"][0]["remaining"] == 7  # explaining charged nothing
