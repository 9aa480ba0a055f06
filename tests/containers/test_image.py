"""The service image, built from the Dockerfile by podman, runs as written: as its
unprivileged user, healthy by its own HEALTHCHECK, and answering a real Envoy on the host."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.containers.podman import run, succeeds, wait_until
from tests.e2e.conftest import trusting
from tests.support import REPO_ROOT, free_port
from tools.demo_upstream import start_in_thread
from tools.dev_cert import generate as generate_dev_certs
from tools.processes import start_envoy

COMPOSE_CONFIG = REPO_ROOT / "compose" / "authz"
LIMITS = REPO_ROOT / "examples" / "ratelimit" / "domains" / "gateway.yaml"


@pytest.fixture(scope="module")
def container(service_image: str) -> Iterator[tuple[str, int]]:
    """The image with docker-compose.yml's mounts (the compose config), its gRPC port
    published on a free loopback port; the compose neighbours (Redis, Keycloak) are absent."""
    port = free_port()
    name = f"authz-image-test-{port}"
    run(
        [
            "podman", "run", "-d", "--rm", "--name", name,
            "-p", f"127.0.0.1:{port}:9001",
            "-v", f"{COMPOSE_CONFIG}:/etc/authz:ro",
            "-v", f"{LIMITS}:/etc/authz-limits/gateway.yaml:ro",
            service_image,
        ]
    )  # fmt: skip
    try:
        # The image's own HEALTHCHECK (authz-service health), run by podman.
        wait_until(
            lambda: succeeds(["podman", "healthcheck", "run", name]),
            within_s=60,
            what="the container's HEALTHCHECK passes",
        )
        yield name, port
    finally:
        logs = run(["podman", "logs", name], check=False)
        run(["podman", "rm", "-f", "-t", "5", name], check=False)
        print(logs[-5000:])


def test_the_image_runs_the_service_as_its_unprivileged_user(
    service_image: str, container: tuple[str, int]
) -> None:
    name, _ = container
    config = json.loads(run(["podman", "image", "inspect", service_image]))[0]["Config"]

    assert config["User"] == "10001:10001"
    assert run(["podman", "exec", name, "id", "-u"]).strip() == "10001"
    assert config["Entrypoint"] + config["Cmd"] == [
        "authz-service",
        "serve",
        "--config",
        "/etc/authz/config.yaml",
    ]


def test_the_images_healthcheck_is_the_grpc_health_command(
    service_image: str, container: tuple[str, int]
) -> None:
    name, _ = container
    inspected = json.loads(run(["podman", "image", "inspect", service_image]))[0]
    healthcheck = inspected["Healthcheck"]["Test"]  # podman puts it beside Config

    assert healthcheck[-4:] == ["authz-service", "health", "--address", "127.0.0.1:9001"]
    assert run(["podman", "exec", name, *healthcheck[-4:]]).strip() == "SERVING"


def test_envoy_on_the_host_gets_answers_from_the_containerised_service(
    container: tuple[str, int], tmp_path: Path
) -> None:
    _, authz_port = container
    upstream = start_in_thread()
    public = free_port()
    envoy = start_envoy(
        {
            "AUTHZ_PORT": authz_port,
            "PUBLIC_PORT": public,
            "UPSTREAM_PORT": upstream.server_address[1],
            "UPSTREAM_V2_PORT": upstream.server_address[1],
            "TLS_DIR": generate_dev_certs(tmp_path / "tls"),
        },
        tmp_path,
        [public],
    )
    try:
        with httpx.Client(verify=trusting(tmp_path / "tls" / "ca.crt"), timeout=10) as client:
            allowed = client.get(f"https://127.0.0.1:{public}/public/hello")
            denied = client.get(f"https://127.0.0.1:{public}/api/orders")
            forged = client.get(
                f"https://127.0.0.1:{public}/api/orders",
                headers={"authorization": "Bearer not.a.token"},
            )
    finally:
        envoy.stop()
        upstream.shutdown()
        upstream.server_close()

    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["path"] == "/public/hello"
    assert denied.status_code == 401
    assert denied.headers["x-authz-reason"] == "authentication_required"
    assert denied.headers["www-authenticate"].startswith("Bearer")
    assert forged.status_code == 401
    assert forged.headers["x-authz-reason"] == "malformed_token"
