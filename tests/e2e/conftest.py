"""The local stack as real processes: Envoy -> authz_service -> demo upstream, dev IdP JWKS."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support import find_binary
from tools.demo_upstream import start_in_thread
from tools.dev_idp import DevIdentityProvider
from tools.processes import (
    REPO_ROOT,
    Process,
    free_port,
    start_authz,
    start_envoy,
    write_service_config,
)


@dataclass
class Stack:
    idp: DevIdentityProvider
    authz: Process
    envoy: Process
    config_path: Path
    public_url: str
    internal_url: str
    workdir: Path

    def client(self) -> httpx.Client:
        return httpx.Client(timeout=10.0)

    def logs(self) -> str:
        return f"--- authz ---\n{self.authz.log()}\n--- envoy ---\n{self.envoy.log()}"


def test_config(jwks_uri: str, port: int, out: Path) -> Path:
    """config/local.yaml with this run's addresses and a short refetch interval for rotation."""
    path = write_service_config(
        REPO_ROOT / "config" / "local.yaml", out, listen_port=port, jwks_uri=jwks_uri
    )
    config = yaml.safe_load(path.read_text())
    config["jwt_providers"][0]["jwks"] = {"min_refetch_interval_s": 1.0, "fetch_timeout_s": 1.0}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def envoy_available() -> str:
    return find_binary("envoy")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, envoy_available: str) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("stack")
    idp = DevIdentityProvider()
    idp.start()
    upstream = start_in_thread()
    authz_port, public, internal, admin = free_port(), free_port(), free_port(), free_port()
    config_path = test_config(idp.jwks_uri, authz_port, workdir / "authz.yaml")
    authz = start_authz(config_path, authz_port, workdir)
    try:
        envoy = start_envoy(
            {
                "ADMIN_PORT": admin,
                "PUBLIC_PORT": public,
                "INTERNAL_PORT": internal,
                "AUTHZ_PORT": authz_port,
                "UPSTREAM_PORT": upstream.server_address[1],
            },
            workdir,
            [public, internal],
        )
    except Exception:
        authz.stop()
        raise
    stack = Stack(
        idp,
        authz,
        envoy,
        config_path,
        f"http://127.0.0.1:{public}",
        f"http://127.0.0.1:{internal}",
        workdir,
    )
    yield stack
    envoy.stop()
    authz.stop()
    upstream.shutdown()
    upstream.server_close()
    idp.stop()
