"""The local stack as real processes: Envoy -> authz_service -> demo upstream, dev IdP JWKS.

The public listener is HTTPS with a development certificate made for the run; `Stack.client()`
trusts its CA. The upstream runs in two versions (v1 stable, v2 canary) as in docker-compose.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.gateway import RateLimitSpy
from tests.support import find_binary
from tests.support.redis import redis_server  # noqa: F401 (a fixture for e2e tests)
from tools.demo_upstream import start_in_thread
from tools.dev_cert import generate as generate_dev_certs
from tools.dev_idp import DevIdentityProvider
from tools.envoy_transports import TRANSPORTS, http_check_section
from tools.processes import (
    REPO_ROOT,
    Process,
    free_port,
    start_authz,
    start_envoy,
    wait_for_port,
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
    ca_file: Path
    http_url: str  # the plain-HTTP listener that redirects to public_url
    metrics_url: str
    admin_url: str

    def client(self) -> httpx.Client:
        return httpx.Client(timeout=10.0, verify=trusting(self.ca_file))

    def logs(self) -> str:
        return f"--- authz ---\n{self.authz.log()}\n--- envoy ---\n{self.envoy.log()}"


def test_config(jwks_uri: str, port: int, out: Path) -> Path:
    """config/local.yaml with this run's addresses and a short refetch interval for rotation."""
    path = write_service_config(
        REPO_ROOT / "config" / "local.yaml", out, listen_port=port, jwks_uri=jwks_uri
    )
    config = yaml.safe_load(path.read_text())
    config["jwt_providers"][0]["jwks"] = {"min_refetch_interval_s": 1.0, "fetch_timeout_s": 1.0}
    # Tests send many bad tokens from 127.0.0.1; lockout has tests of its own.
    config["rate_limit"]["brute_force"] = {"enabled": False}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def trusting(ca_file: Path) -> ssl.SSLContext:
    """A TLS client context that trusts the run's development CA (and nothing else)."""
    return ssl.create_default_context(cafile=str(ca_file))


@pytest.fixture(scope="session")
def envoy_available() -> str:
    return find_binary("envoy")


@contextlib.contextmanager
def running_stack(
    workdir: Path,
    *,
    front: Callable[[int], int] | None = None,
    edit_config: Callable[[dict[str, Any]], None] | None = None,
    envoy_values: Mapping[str, object] | None = None,
    edit_envoy: Callable[[dict[str, Any]], None] | None = None,
    transport: str = "grpc",
    http_server: str = "granian",
) -> Iterator[Stack]:
    """Start the stack; stop every process when the block ends.

    `front(authz_port)` may start something between Envoy and authz_service and return the
    port Envoy should call instead; `edit_config` changes the service config before it starts,
    `edit_envoy` the rendered Envoy config. `transport` http: Envoy's ext_authz calls the HTTP
    check endpoint served by `http_server` (the render of tools/envoy_transports.py),
    health-checked on the service's /readyz.
    """
    idp = DevIdentityProvider()
    idp.start()
    upstream = start_in_thread()
    upstream_v2 = start_in_thread(version="v2")
    authz_port, public, internal, admin = free_port(), free_port(), free_port(), free_port()
    http, metrics = free_port(), free_port()
    tls_dir = generate_dev_certs(workdir / "tls")
    config_path = test_config(idp.jwks_uri, authz_port, workdir / "authz.yaml")
    config = yaml.safe_load(config_path.read_text())
    # The service's observability port: /readyz is the barrier below and, over HTTP, what
    # Envoy health-checks.
    config["telemetry"]["metrics"] = {"listen": f"127.0.0.1:{free_port()}"}
    http_ports: dict[str, int] = {}
    if transport == "http":
        http_ports["AUTHZ_HTTP_PORT"] = free_port()
        listen = f"127.0.0.1:{http_ports['AUTHZ_HTTP_PORT']}"
        config["http_check"] = http_check_section(listen, http_server)
    if edit_config is not None:
        edit_config(config)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    observability = (config["telemetry"].get("metrics") or {}).get("listen")
    if observability and transport == "http":
        http_ports["AUTHZ_METRICS_PORT"] = int(observability.rsplit(":", 1)[1])
    authz = start_authz(config_path, authz_port, workdir)
    envoy: Process | None = None
    try:
        if "AUTHZ_HTTP_PORT" in http_ports:
            wait_for_port(http_ports["AUTHZ_HTTP_PORT"], process=authz.popen)
        if observability:
            wait_until_ready(observability, authz)
        envoy = start_envoy(
            {
                "ADMIN_PORT": admin,
                "PUBLIC_PORT": public,
                "PUBLIC_HTTP_PORT": http,
                "INTERNAL_PORT": internal,
                "METRICS_PORT": metrics,
                "AUTHZ_PORT": front(authz_port) if front else authz_port,
                "UPSTREAM_PORT": upstream.server_address[1],
                "UPSTREAM_V2_PORT": upstream_v2.server_address[1],
                "TLS_DIR": tls_dir,
                **http_ports,
                **(envoy_values or {}),
            },
            workdir,
            [public, internal],
            transport=transport,
            edit=edit_envoy,
        )
        yield Stack(
            idp,
            authz,
            envoy,
            config_path,
            f"https://127.0.0.1:{public}",
            f"http://127.0.0.1:{internal}",
            workdir,
            ca_file=tls_dir / "ca.crt",
            http_url=f"http://127.0.0.1:{http}",
            metrics_url=f"http://127.0.0.1:{metrics}",
            admin_url=f"http://127.0.0.1:{admin}",
        )
    finally:
        if envoy is not None:
            envoy.stop()
        authz.stop()
        for server in (upstream, upstream_v2):
            server.shutdown()
            server.server_close()
        idp.stop()


def wait_until_ready(listen: str, authz: Process, timeout: float = 20.0) -> None:
    """Until /readyz says the service can decide (its JWKS fetched): a first check sent
    earlier could wait on the fetch past Envoy's 1 s ext_authz timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if authz.popen.poll() is not None:
            raise RuntimeError(f"authz_service exited:\n{authz.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://{listen}/readyz", timeout=1.0).status_code == 200:
                return
        time.sleep(0.05)  # poll interval of the wait on the condition above
    raise TimeoutError(f"authz_service not ready after {timeout}s:\n{authz.log()}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, envoy_available: str) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack")) as stack:
        yield stack


@pytest.fixture(scope="module", params=TRANSPORTS)
def stack_on_each_transport(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, envoy_available: str
) -> Iterator[Stack]:
    """The stack with Envoy asking over gRPC, then over HTTP (granian): a module whose `stack`
    is this one pins that both transports give a client and the upstream the same answers."""
    workdir = tmp_path_factory.mktemp(f"stack-{request.param}")
    with running_stack(workdir, transport=request.param) as stack:
        yield stack


@dataclass
class Gateway:
    stack: Stack
    spy: RateLimitSpy


@pytest.fixture(scope="package")
def gateway(tmp_path_factory: pytest.TempPathFactory, envoy_available: str) -> Iterator[Gateway]:
    """The stack with a RateLimitSpy as the authz_service endpoint Envoy calls.

    Shared by the test_gateway_* modules (one stack for all of them): a test that changes the
    spy's answer resets it (see the `gw` fixture in test_gateway_ratelimit.py).
    """
    spies: list[RateLimitSpy] = []

    def front(authz_port: int) -> int:
        spies.append(RateLimitSpy(authz_port).start())
        return spies[0].port

    try:
        with running_stack(tmp_path_factory.mktemp("gateway"), front=front) as stack:
            yield Gateway(stack, spies[0])
    finally:
        for spy in spies:
            spy.stop()
