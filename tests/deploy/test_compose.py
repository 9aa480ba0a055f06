"""docker-compose.yml, the Dockerfile and the files under compose/ agree with the service."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from authz_service.config.loader import load_config_file
from authz_service.schema import Config
from tests.deploy.conftest import docker_compose, port_of, volume_sources
from tests.support import REPO_ROOT
from tools.envoy_transports import CLIENT_ADDRESS_HEADER, http_check_mounts
from tools.render_envoy import TARGETS

COMPOSE = REPO_ROOT / "docker-compose.yml"
ENVOY_VALUES = TARGETS["compose"].values


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = compose["services"]
    return result


@pytest.fixture(scope="module")
def service_config() -> Config:
    return load_config_file(REPO_ROOT / "compose" / "authz" / "config.yaml").config


@pytest.fixture(scope="module")
def realm() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (REPO_ROOT / "compose" / "keycloak" / "demo-realm.json").read_text()
    )
    return data


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> host path (relative to the repository)."""
    result = {}
    for volume in service.get("volumes", []):
        host, container = volume.split(":")[:2]
        result[container] = host
    return result


def test_the_stack_has_every_piece(services: dict[str, Any]) -> None:
    assert set(services) == {
        "dev-certs",
        "envoy",
        "authz-service",
        "redis",
        "keycloak",
        "upstream-v1",
        "upstream-v2",
        "jaeger",
        "prometheus",
    }


def test_mounted_files_exist(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for container, host in mounts(service).items():
            if host == "./compose/certs":
                continue  # made by the dev-certs service at start
            assert (REPO_ROOT / host).exists(), f"{name}: {host} -> {container}"


def test_envoy_runs_the_generated_config_with_its_certificates(services: dict[str, Any]) -> None:
    envoy = services["envoy"]
    config_path = envoy["command"][envoy["command"].index("-c") + 1]
    volumes = mounts(envoy)

    assert volumes[config_path] == "./envoy/generated/compose.yaml"
    assert volumes[ENVOY_VALUES["TLS_DIR"]] == mounts(services["dev-certs"])["/certs"]
    published = {port.split(":")[-1] for port in envoy["ports"]}
    assert {
        ENVOY_VALUES["PUBLIC_PORT"],
        ENVOY_VALUES["PUBLIC_HTTP_PORT"],
        ENVOY_VALUES["INTERNAL_PORT"],
    } <= published
    # HTTP redirects keep the HTTPS port: the host port must be the container port.
    assert f"{ENVOY_VALUES['PUBLIC_PORT']}:{ENVOY_VALUES['PUBLIC_PORT']}" in envoy["ports"]
    assert envoy["mem_limit"] == "512m"
    assert int(ENVOY_VALUES["MAX_HEAP_BYTES"]) < 512 * 1024 * 1024


def test_envoy_addresses_are_compose_services(services: dict[str, Any]) -> None:
    for key in ("AUTHZ_HOST", "UPSTREAM_HOST", "UPSTREAM_V2_HOST", "OTLP_HOST"):
        assert ENVOY_VALUES[key] in services, key
    for name, label in (("upstream-v1", "v1"), ("upstream-v2", "v2")):
        command = services[name]["command"]
        assert command[command.index("--port") + 1] == ENVOY_VALUES["UPSTREAM_PORT"]
        assert command[command.index("--version") + 1] == label


def test_the_service_config_is_valid_and_agrees_with_envoy(
    services: dict[str, Any], service_config: Config
) -> None:
    assert port_of(service_config.server.listen) == int(ENVOY_VALUES["AUTHZ_PORT"]) == 9001
    assert service_config.server.listen.startswith("0.0.0.0:")
    volumes = mounts(services["authz-service"])
    assert volumes["/etc/authz"] == "./compose/authz"
    # Envoy's context_extensions name these policies.
    assert {"public", "internal"} <= set(service_config.policies)
    assert service_config.rate_limit is not None
    assert service_config.rate_limit.store == "redis"
    assert service_config.rate_limit.redis.url.startswith("redis://redis:")
    limits_dir = str(service_config.rate_limit.config_dir)
    assert volumes[f"{limits_dir}/gateway.yaml"] == "./examples/ratelimit/domains/gateway.yaml"


def test_the_image_serves_the_mounted_config_with_a_grpc_health_check() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert froms == ["python:3.11-slim", "python:3.11-slim"]  # multi-stage, slim
    user = re.search(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert user is not None and not user.group(1).startswith(("0", "root"))
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.+)$", dockerfile, re.MULTILINE)[1])  # type: ignore[index]
    command = json.loads(re.search(r"^CMD (.+)$", dockerfile, re.MULTILINE)[1])  # type: ignore[index]
    assert entrypoint + command == ["authz-service", "serve", "--config", "/etc/authz/config.yaml"]
    healthcheck = re.search(r"^HEALTHCHECK .* CMD (.+)$", dockerfile, re.MULTILINE)
    assert healthcheck is not None
    assert json.loads(healthcheck.group(1)) == [
        "authz-service",
        "health",
        "--address",
        "127.0.0.1:9001",
    ]


def test_keycloak_issues_what_the_service_accepts(
    services: dict[str, Any], service_config: Config, realm: dict[str, Any]
) -> None:
    (provider,) = service_config.jwt_providers
    hostname = services["keycloak"]["environment"]["KC_HOSTNAME"]
    assert provider.issuer == f"{hostname}/realms/{realm['realm']}"
    assert provider.jwks_uri == (
        f"http://keycloak:8080/realms/{realm['realm']}/protocol/openid-connect/certs"
    )
    assert services["keycloak"]["environment"]["KC_HTTP_PORT"] == "8080"
    (client,) = realm["clients"]
    assert client["publicClient"] and client["directAccessGrantsEnabled"]
    mappers = {mapper["protocolMapper"]: mapper["config"] for mapper in client["protocolMappers"]}
    assert mappers["oidc-audience-mapper"]["included.custom.audience"] in provider.audiences
    assert mappers["oidc-usermodel-attribute-mapper"]["claim.name"] == provider.tier_claim
    assert "basic" in client["defaultClientScopes"]  # the `sub` claim (Keycloak 25+)
    assert provider.roles_claims == ["realm_access.roles"]


def test_realm_roles_are_the_ones_the_policies_use(
    service_config: Config, realm: dict[str, Any]
) -> None:
    realm_roles = {role["name"] for role in realm["roles"]["realm"]}
    used = {
        role
        for rule in service_config.policies["public"].rules
        if not isinstance(rule.allow, str | None)
        for role in rule.allow.roles_any
    }
    assert used <= realm_roles
    for user in realm["users"]:
        assert set(user["realmRoles"]) <= realm_roles
        assert user["attributes"]["tier"][0] in {"gold", "silver", "free"}
        assert user["requiredActions"] == []
    profile = json.loads(
        realm["components"]["org.keycloak.userprofile.UserProfileProvider"][0]["config"][
            "kc.user.profile.config"
        ][0]
    )
    names = {attribute["name"] for attribute in profile["attributes"]}
    assert {"username", "email", "firstName", "lastName", "tier"} <= names


def test_prometheus_scrapes_envoy_metrics_listener() -> None:
    config = yaml.safe_load((REPO_ROOT / "compose" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}

    assert jobs["envoy"]["metrics_path"] == "/stats/prometheus"
    assert jobs["envoy"]["static_configs"][0]["targets"] == [
        f"envoy:{ENVOY_VALUES['METRICS_PORT']}"
    ]
    assert "authz-service" in jobs


def test_prometheus_scrapes_the_service_metrics_port(service_config: Config) -> None:
    config = yaml.safe_load((REPO_ROOT / "compose" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    metrics = service_config.telemetry.metrics.listen

    assert metrics is not None and metrics.startswith("0.0.0.0:")
    assert jobs["authz-service"]["metrics_path"] == "/metrics"
    assert jobs["authz-service"]["static_configs"][0]["targets"] == [
        f"authz-service:{port_of(metrics)}"
    ]


def test_jaeger_receives_otlp_and_shows_its_ui(services: dict[str, Any]) -> None:
    jaeger = services["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/all-in-one:")
    assert "16686:16686" in jaeger["ports"]
    assert ENVOY_VALUES["OTLP_PORT"] == "4317"


def test_the_service_exports_traces_to_jaeger(service_config: Config) -> None:
    tracing = service_config.telemetry.tracing
    assert tracing.exporter == "otlp_grpc"
    assert tracing.endpoint == f"http://{ENVOY_VALUES['OTLP_HOST']}:{ENVOY_VALUES['OTLP_PORT']}"


def test_docker_compose_config_accepts_the_file() -> None:
    result = docker_compose("-f", str(COMPOSE), "config", "-q")
    assert result.returncode == 0, result.stderr


def test_docker_compose_config_accepts_the_no_registry_override() -> None:
    override = REPO_ROOT / "docker-compose.no-registry.yml"
    result = docker_compose("-f", str(COMPOSE), "-f", str(override), "config")

    assert result.returncode == 0, result.stderr
    merged = yaml.safe_load(result.stdout)["services"]
    # Same names, ports and addresses: the service config and Envoy's render apply unchanged.
    published = [(p["published"], p["target"]) for p in merged["keycloak"]["ports"]]
    assert published == [(8180, 8080)] and services_of_base()["keycloak"]["ports"] == ["8180:8080"]
    assert "oidc-provider" in merged["keycloak"]["image"]
    assert merged["jaeger"]["entrypoint"][-1] == "/opt/otlp_receiver.py"


def services_of_base() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return data


def test_the_http_variant_calls_the_mounts_the_service_config_serves(
    services: dict[str, Any], service_config: Config
) -> None:
    rendered = TARGETS["compose-http"].out.read_text()
    http_check = service_config.http_check
    assert http_check is not None
    served = [endpoint.model_dump() for endpoint in http_check.endpoints]
    assert served == http_check_mounts(rendered)
    assert http_check.server == "granian"
    assert http_check.envoy.client_address_header == CLIENT_ADDRESS_HEADER
    assert port_of(http_check.listen) == int(ENVOY_VALUES["AUTHZ_HTTP_PORT"])
    assert str(port_of(http_check.listen)) in services["authz-service"]["expose"]
    # Envoy's health check asks /readyz on the observability port.
    metrics = service_config.telemetry.metrics.listen
    assert metrics is not None and port_of(metrics) == int(ENVOY_VALUES["AUTHZ_METRICS_PORT"])


def test_docker_compose_http_override_mounts_the_http_render() -> None:
    result = docker_compose(
        "-f", "docker-compose.yml", "-f", "compose/transport-http.yml", "config"
    )

    assert result.returncode == 0, result.stderr
    envoy = yaml.safe_load(result.stdout)["services"]["envoy"]
    volumes = volume_sources(envoy)
    assert volumes["/etc/envoy/envoy.yaml"].endswith("envoy/generated/compose-http.yaml")
    assert volumes[ENVOY_VALUES["TLS_DIR"]].endswith("compose/certs")
