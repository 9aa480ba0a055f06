from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from authz_service.server import AuthzServer
from tests.support.authz_config import write_config
from tests.support.authz_server import running_server
from tests.support.idp import running_idp
from tools.dev_idp import DevIdentityProvider

ServerFactory = Callable[[dict[str, Any]], AsyncIterator[AuthzServer]]


@pytest.fixture
def idp() -> Iterator[DevIdentityProvider]:
    with running_idp() as provider:
        yield provider


def service_config(idp: DevIdentityProvider, *, watch: bool = True) -> dict[str, Any]:
    """The shape of config/local.yaml, pointed at the test's IdP and a free port."""
    return {
        "server": {"listen": "127.0.0.1:0", "grace_period_s": 0.1, "watch_config": watch},
        "admin": {"listen": None},
        "telemetry": {"metrics": {"listen": None}, "audit": {"enabled": False}},
        "jwt_providers": [
            {
                "name": "dev",
                "issuer": idp.issuer,
                "audiences": [idp.audience],
                "jwks_uri": idp.jwks_uri,
                "roles_claims": ["realm_access.roles"],
                "tier_claim": "tier",
            }
        ],
        "identity_headers": {"strip_credentials": True},
        "policy_selection": {"default": "public"},
        "policies": {
            "public": {
                "rules": [
                    {
                        "name": "public-docs",
                        "match": {"paths": [{"prefix": "/public/"}]},
                        "allow": "anonymous",
                    },
                    {
                        "name": "admin-area",
                        "match": {"paths": [{"prefix": "/admin/"}]},
                        "allow": {"roles_any": ["admin"]},
                    },
                    {
                        "name": "api",
                        "match": {"paths": [{"prefix": "/api/"}]},
                        "allow": "authenticated",
                    },
                ]
            },
            "internal": {"rules": [{"name": "closed", "deny": True}]},
        },
    }


@pytest.fixture
def config_path(tmp_path: Path, idp: DevIdentityProvider) -> Path:
    directory = tmp_path / "config"
    directory.mkdir()
    return write_config(directory / "authz.yaml", service_config(idp))


@pytest.fixture
async def server(config_path: Path) -> AsyncIterator[AuthzServer]:
    async with running_server(config_path) as authz:
        yield authz


@pytest.fixture
async def channel(server: AuthzServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as opened:
        yield opened
