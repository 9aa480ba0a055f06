"""deploy/: manifests parse, and names, ports, paths and config keys agree with the service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from authz_service.config.loader import load_config_file
from authz_service.schema import Config
from tests.deploy.conftest import DEPLOY, K8S_SERVICE, K8S_SIDECAR, documents, find, port_of
from tests.support import REPO_ROOT
from tools.render_envoy import TARGETS

SIDECAR_VALUES = TARGETS["kubernetes"].values
MANIFESTS = sorted(
    path
    for path in DEPLOY.rglob("*.yaml")
    if path.name
    not in {
        "kustomization.yaml",
        "config.yaml",
        "config.tests.yaml",  # authz-service test reads it beside config.yaml
        "gateway-limits.yaml",
        "envoy.yaml",
    }
)


@pytest.fixture(scope="module")
def service_config() -> Config:
    return load_config_file(K8S_SERVICE / "config.yaml").config


@pytest.fixture(scope="module")
def deployment() -> dict[str, Any]:
    return find("Deployment", "authz-service", K8S_SERVICE)


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    for item in deployment["spec"]["template"]["spec"]["containers"]:
        if item["name"] == name:
            return dict(item)
    raise AssertionError(f"no container {name}")


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_manifest_parses_into_named_objects(path: Path) -> None:
    docs = documents(path)
    assert docs
    for doc in docs:
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"]


@pytest.mark.parametrize("directory", [K8S_SERVICE, K8S_SIDECAR], ids=lambda p: p.name)
def test_kustomizations_name_files_that_exist(directory: Path) -> None:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (directory / resource).is_file(), resource
    for generator in kustomization.get("configMapGenerator", []):
        for entry in generator["files"]:
            assert (directory / entry.split("=")[-1]).is_file(), entry
    assert set(MANIFESTS) >= {directory / resource for resource in kustomization["resources"]}


def test_probes_and_ports_match_the_service_config(
    deployment: dict[str, Any], service_config: Config
) -> None:
    app = container(deployment, "authz-service")
    grpc_port = port_of(service_config.server.listen)
    assert grpc_port == 9001
    assert {"name": "grpc", "containerPort": grpc_port, "protocol": "TCP"} in app["ports"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert app[probe]["grpc"] == {"port": grpc_port}, probe
    for service_name in ("authz-service", "authz-service-pods"):
        service = find("Service", service_name, K8S_SERVICE)
        (grpc,) = [port for port in service["spec"]["ports"] if port["name"] == "grpc"]
        assert grpc["port"] == grpc_port and grpc["targetPort"] == "grpc"
        assert grpc["appProtocol"] == "grpc"
    assert find("Service", "authz-service-pods", K8S_SERVICE)["spec"]["clusterIP"] == "None"


def test_the_metrics_port_matches_the_service_config(
    deployment: dict[str, Any], service_config: Config
) -> None:
    listen = service_config.telemetry.metrics.listen
    assert listen is not None
    app = container(deployment, "authz-service")
    (port,) = [port for port in app["ports"] if port["name"] == "metrics"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]

    assert port["containerPort"] == port_of(listen)
    assert annotations["prometheus.io/port"] == str(port_of(listen))


def test_the_config_maps_are_mounted_where_the_service_reads_them(
    deployment: dict[str, Any], service_config: Config
) -> None:
    app = container(deployment, "authz-service")
    config_path = Path(app["args"][app["args"].index("--config") + 1])
    mounts = {mount["mountPath"]: mount for mount in app["volumeMounts"]}
    volumes = {
        volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]
    }
    kustomization = yaml.safe_load((K8S_SERVICE / "kustomization.yaml").read_text())
    generated = {gen["name"]: gen["files"] for gen in kustomization["configMapGenerator"]}

    config_mount = mounts[str(config_path.parent)]
    assert "subPath" not in config_mount  # subPath mounts never see ConfigMap updates
    config_map = volumes[config_mount["name"]]["configMap"]["name"]
    assert config_path.name in generated[config_map]
    assert kustomization["generatorOptions"]["disableNameSuffixHash"] is True  # hot reload
    assert service_config.server.watch_config

    assert service_config.rate_limit is not None
    limits_mount = mounts[str(service_config.rate_limit.config_dir)]
    limits_map = volumes[limits_mount["name"]]["configMap"]["name"]
    assert generated[limits_map] == ["gateway.yaml=gateway-limits.yaml"]


def test_the_pods_run_unprivileged(deployment: dict[str, Any]) -> None:
    pod = deployment["spec"]["template"]["spec"]
    app = container(deployment, "authz-service")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
    assert app["securityContext"]["readOnlyRootFilesystem"] is True
    assert app["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_hpa_and_pdb_target_the_deployment(deployment: dict[str, Any]) -> None:
    hpa = find("HorizontalPodAutoscaler", "authz-service", K8S_SERVICE)
    pdb = find("PodDisruptionBudget", "authz-service", K8S_SERVICE)
    labels = deployment["spec"]["template"]["metadata"]["labels"]

    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


def test_redis_url_names_the_redis_service(service_config: Config) -> None:
    service = find("Service", "redis", K8S_SERVICE)
    namespace = yaml.safe_load((K8S_SERVICE / "kustomization.yaml").read_text())["namespace"]
    assert service_config.rate_limit is not None
    assert service_config.rate_limit.redis.url.startswith(
        f"redis://redis.{namespace}.svc.cluster.local:{service['spec']['ports'][0]['port']}/"
    )


def test_the_limits_config_map_is_the_example_file() -> None:
    copy = (K8S_SERVICE / "gateway-limits.yaml").read_text().split("\n", 2)[2]
    assert copy == (REPO_ROOT / "examples" / "ratelimit" / "domains" / "gateway.yaml").read_text()


def test_the_sidecar_calls_the_headless_service_and_mounts_its_certificates() -> None:
    namespace = yaml.safe_load((K8S_SERVICE / "kustomization.yaml").read_text())["namespace"]
    assert SIDECAR_VALUES["AUTHZ_HOST"] == f"authz-service-pods.{namespace}.svc.cluster.local"
    assert SIDECAR_VALUES["AUTHZ_PORT"] == "9001"
    orders = find("Deployment", "orders", K8S_SIDECAR)
    envoy = container(orders, "envoy")
    mounts = {mount["name"]: mount["mountPath"] for mount in envoy["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in orders["spec"]["template"]["spec"]["volumes"]}

    assert envoy["args"][envoy["args"].index("-c") + 1] == mounts["envoy-config"] + "/envoy.yaml"
    assert mounts["envoy-certs"] == SIDECAR_VALUES["TLS_DIR"]
    paths = {item["path"] for item in volumes["envoy-certs"]["secret"]["items"]}
    assert paths == {"gateway.crt", "gateway.key", "ca.crt"}
    ports = {port["containerPort"] for port in envoy["ports"]}
    assert {
        int(SIDECAR_VALUES[key])
        for key in ("PUBLIC_PORT", "PUBLIC_HTTP_PORT", "INTERNAL_PORT", "METRICS_PORT")
    } <= ports
    app = container(orders, "app")
    assert app["ports"][0]["containerPort"] == int(SIDECAR_VALUES["UPSTREAM_PORT"])
    limit = envoy["resources"]["limits"]["memory"]
    assert limit.endswith("Mi") and int(SIDECAR_VALUES["MAX_HEAP_BYTES"]) < int(limit[:-2]) * 2**20


def test_istio_provider_points_at_the_service() -> None:
    operator = documents(DEPLOY / "istio" / "mesh-config.yaml")[0]
    policy = find("AuthorizationPolicy", "orders-ext-authz", DEPLOY / "istio")
    (provider,) = operator["spec"]["meshConfig"]["extensionProviders"]

    assert policy["spec"]["action"] == "CUSTOM"
    assert policy["spec"]["provider"]["name"] == provider["name"]
    grpc = provider["envoyExtAuthzGrpc"]
    assert grpc["service"] == "authz-service.authz.svc.cluster.local"
    assert grpc["port"] == 9001
    assert grpc["failOpen"] is False


def test_envoy_gateway_security_policy_points_at_the_service() -> None:
    policy = find("SecurityPolicy", "orders-ext-authz", DEPLOY / "envoy-gateway")
    grant = find("ReferenceGrant", "shop-ext-authz", DEPLOY / "envoy-gateway")
    (backend,) = policy["spec"]["extAuth"]["grpc"]["backendRefs"]

    assert (backend["name"], backend["namespace"], backend["port"]) == (
        "authz-service",
        "authz",
        9001,
    )
    assert policy["spec"]["extAuth"]["failOpen"] is False
    assert grant["metadata"]["namespace"] == backend["namespace"]
    assert grant["spec"]["from"][0]["namespace"] == policy["metadata"]["namespace"]
    assert grant["spec"]["to"][0]["name"] == backend["name"]
