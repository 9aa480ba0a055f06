"""When authz_service cannot answer, Envoy refuses the request (failure_mode_allow: false),
whether its ext_authz asks over gRPC or over HTTP."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Stack, running_stack, trusting
from tools.demo_upstream import start_in_thread
from tools.dev_cert import generate as generate_dev_certs
from tools.envoy_transports import TRANSPORTS
from tools.processes import Process, free_port, start_envoy

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module", params=TRANSPORTS)
def envoy_without_authz(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, envoy_available: str
) -> Iterator[tuple[str, Path]]:
    workdir: Path = tmp_path_factory.mktemp(f"no-authz-{request.param}")
    upstream = start_in_thread()
    public, internal, admin = free_port(), free_port(), free_port()
    tls_dir = generate_dev_certs(workdir / "tls")
    envoy: Process = start_envoy(
        {
            "ADMIN_PORT": admin,
            "PUBLIC_PORT": public,
            "INTERNAL_PORT": internal,
            "AUTHZ_PORT": free_port(),  # nothing listens there
            "AUTHZ_HTTP_PORT": free_port(),  # nor there
            "AUTHZ_METRICS_PORT": free_port(),
            "UPSTREAM_PORT": upstream.server_address[1],
            "TLS_DIR": tls_dir,
        },
        workdir,
        [public],
        transport=request.param,
    )
    yield f"https://127.0.0.1:{public}", tls_dir / "ca.crt"
    envoy.stop()
    upstream.shutdown()
    upstream.server_close()


def test_requests_are_refused_when_the_service_is_down(
    envoy_without_authz: tuple[str, Path],
) -> None:
    url, ca_file = envoy_without_authz
    with httpx.Client(timeout=10, verify=trusting(ca_file)) as client:
        anonymous = client.get(url + "/public/page")
        with_token = client.get(url + "/api/orders", headers={"authorization": "Bearer x.y.z"})

    assert anonymous.status_code == 503
    assert with_token.status_code == 503
    assert "version" not in anonymous.text  # the upstream's echo never came back


def test_health_route_skips_authorization(envoy_without_authz: tuple[str, Path]) -> None:
    url, ca_file = envoy_without_authz
    with httpx.Client(timeout=10, verify=trusting(ca_file)) as client:
        response = client.get(url + "/healthz")

    assert response.status_code == 200
    assert response.text == "ok\n"


def test_stopping_the_service_mid_run_makes_envoy_deny(stack: Stack) -> None:
    """This module starts its own stack, so stopping its service affects no other test."""
    token = stack.idp.mint("alice", roles=["editor"])
    headers = {"authorization": f"Bearer {token}"}
    with stack.client() as client:
        assert client.get(stack.public_url + "/api/orders", headers=headers).status_code == 200
        stack.authz.stop()
        assert client.get(stack.public_url + "/api/orders", headers=headers).status_code == 503


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_hung_service_is_a_quick_503_and_service_resumes_after(
    tmp_path: Path, transport: str
) -> None:
    """A service that accepts but never answers (stopped with SIGSTOP) must not hang clients:
    Envoy's 1 s ext_authz timeout answers 503, and answers flow again once it resumes."""
    with running_stack(tmp_path, transport=transport) as hung:
        token = hung.idp.mint("alice", roles=["editor"])
        headers = {"authorization": f"Bearer {token}"}
        with hung.client() as client:
            assert client.get(hung.public_url + "/api/orders", headers=headers).status_code == 200
            hung.authz.popen.send_signal(signal.SIGSTOP)
            try:
                started = time.monotonic()
                refused = client.get(hung.public_url + "/api/orders", headers=headers)
                waited = time.monotonic() - started
            finally:
                hung.authz.popen.send_signal(signal.SIGCONT)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                resumed = client.get(hung.public_url + "/api/orders", headers=headers)
                if resumed.status_code == 200:
                    break
                time.sleep(0.2)

    assert refused.status_code == 503
    assert "version" not in refused.text  # never passed to the upstream
    assert waited < 3.0  # the 1 s timeout (or the failed health check), not the client's 10 s
    assert resumed.status_code == 200
