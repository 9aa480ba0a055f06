"""A gateway (nginx, Traefik, Envoy's http_service) in front of the demo upstream, asking the
real service's HTTP check endpoint before every request: the shared stack of those tests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools.demo_upstream import start_in_thread
from tools.dev_idp import DevIdentityProvider
from tools.processes import (
    REPO_ROOT,
    Process,
    free_port,
    start_authz,
    wait_for_port,
    write_service_config,
)

# (working directory, the HTTP check port, the upstream's port) -> (gateway, its port)
StartGateway = Callable[[Path, int, int], tuple[Process, int]]
EditConfig = Callable[[dict[str, Any]], None]


@dataclass
class GatewayStack:
    idp: DevIdentityProvider
    url: str
    gateway: Process
    authz: Process

    def logs(self) -> str:
        return f"--- authz ---\n{self.authz.log()}\n--- gateway ---\n{self.gateway.log()}"


def http_check_config(
    workdir: Path,
    idp: DevIdentityProvider,
    grpc_port: int,
    http_port: int,
    endpoint: dict[str, Any],
    edit: EditConfig | None = None,
    server: str = "aiohttp",
) -> Path:
    """config/local.yaml with this run's addresses, one HTTP check endpoint, brute-force
    lockout off (these tests send bad tokens from 127.0.0.1), then `edit` applied."""
    path = write_service_config(
        REPO_ROOT / "config" / "local.yaml",
        workdir / "authz.yaml",
        listen_port=grpc_port,
        jwks_uri=idp.jwks_uri,
    )
    config = yaml.safe_load(path.read_text())
    config["http_check"] = {
        "listen": f"127.0.0.1:{http_port}",
        "server": server,
        "endpoints": [endpoint],
    }
    config["rate_limit"]["brute_force"] = {"enabled": False}
    if edit is not None:
        edit(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@contextlib.contextmanager
def running_gateway(
    workdir: Path,
    endpoint: dict[str, Any],
    start_gateway: StartGateway,
    edit: EditConfig | None = None,
    server: str = "aiohttp",
) -> Iterator[GatewayStack]:
    """IdP, upstream, the service (its config changed by `edit`, its HTTP check endpoint
    served by `server`: aiohttp or granian) and the gateway."""
    idp = DevIdentityProvider()
    idp.start()
    upstream = start_in_thread()
    grpc_port, http_port = free_port(), free_port()
    config = http_check_config(workdir, idp, grpc_port, http_port, endpoint, edit, server)
    authz = start_authz(config, grpc_port, workdir)
    gateway: Process | None = None
    try:
        wait_for_port(http_port, process=authz.popen)
        gateway, port = start_gateway(workdir / "gateway", http_port, upstream.server_address[1])
        yield GatewayStack(idp, f"http://127.0.0.1:{port}", gateway, authz)
    finally:
        if gateway is not None:
            gateway.stop()
        authz.stop()
        upstream.shutdown()
        upstream.server_close()
        idp.stop()
