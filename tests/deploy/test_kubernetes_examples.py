"""The Kubernetes examples work as written: the internal listener admits a credential the
internal policy allows, every route backend exists, the sidecar Envoy can start under
runAsNonRoot, and the placeholders a user must replace are called out."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, K8S_SERVICE, K8S_SIDECAR, documents, find
from tests.support import REPO_ROOT
from tests.support.idp import running_idp
from tools.dev_idp import DevIdentityProvider


@pytest.fixture(scope="module")
def idp() -> Iterator[DevIdentityProvider]:
    with running_idp() as provider:
        yield provider


@pytest.fixture(scope="module")
def k8s_config(idp: DevIdentityProvider, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped Kubernetes config with this test's IdP in place of the placeholder issuer
    (and without the in-cluster Redis, which the policy decision does not need)."""
    config = yaml.safe_load((K8S_SERVICE / "config.yaml").read_text())
    (provider,) = config["jwt_providers"]
    provider.update(issuer=idp.issuer, jwks_uri=idp.jwks_uri, audiences=[idp.audience])
    del config["rate_limit"]
    path = tmp_path_factory.mktemp("k8s") / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def explain_internal(config: Path, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, "-m", "authz_service", "explain", "--config", str(config),
            "--path", "/internal/jobs", "--context", "policy=internal",
            "--token-from-env", "SERVICE_TOKEN", "--exit-code",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SERVICE_TOKEN": token},
        cwd=REPO_ROOT,
        check=False,
    )  # fmt: skip


def test_a_service_token_with_the_internal_role_is_allowed_on_the_internal_listener(
    idp: DevIdentityProvider, k8s_config: Path
) -> None:
    # The sidecar's internal listener is plain HTTP: no peer certificate, so a token it is.
    result = explain_internal(k8s_config, idp.mint("svc-billing", roles=["internal-service"]))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "ALLOW" in result.stdout


def test_a_user_token_without_the_internal_role_is_refused_there(
    idp: DevIdentityProvider, k8s_config: Path
) -> None:
    result = explain_internal(k8s_config, idp.mint("alice", roles=["editor"]))

    assert result.returncode == 3, result.stdout + result.stderr
    assert "FORBIDDEN (missing_role)" in result.stdout


def _services() -> set[tuple[str, str, int]]:
    found = set()
    for path in DEPLOY.rglob("*.yaml"):
        for doc in documents(path):
            if isinstance(doc, dict) and doc.get("kind") == "Service":
                namespace = doc["metadata"].get("namespace", "")
                for port in doc["spec"]["ports"]:
                    found.add((doc["metadata"]["name"], namespace, port["port"]))
    return found


def test_every_http_route_backend_is_a_service_the_manifests_define() -> None:
    route = find("HTTPRoute", "orders", DEPLOY / "envoy-gateway")
    services = _services()
    for rule in route["spec"]["rules"]:
        for backend in rule["backendRefs"]:
            namespace = backend.get("namespace", route["metadata"]["namespace"])
            assert (backend["name"], namespace, backend["port"]) in services, backend


def test_the_envoy_gateway_kustomization_applies_the_app_and_the_policy() -> None:
    kustomization = yaml.safe_load((DEPLOY / "envoy-gateway" / "kustomization.yaml").read_text())

    assert set(kustomization["resources"]) == {"orders-app.yaml", "security-policy.yaml"}


def test_the_sidecar_envoy_runs_as_the_official_images_envoy_user() -> None:
    deployment = find("Deployment", "orders", K8S_SIDECAR)
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    (envoy,) = [c for c in pod["containers"] if c["name"] == "envoy"]
    context = {**pod.get("securityContext", {}), **envoy["securityContext"]}

    # The image's USER is root: runAsNonRoot alone makes the kubelet refuse to start it.
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 101
    assert context["runAsGroup"] == 101


def test_the_placeholders_to_replace_are_called_out_in_the_deployment_docs() -> None:
    docs = (REPO_ROOT / "docs" / "deployment.md").read_text()
    config = yaml.safe_load((K8S_SERVICE / "config.yaml").read_text())
    certificate = find("Certificate", "orders-gateway", K8S_SIDECAR)

    assert config["jwt_providers"][0]["issuer"] in docs
    assert certificate["spec"]["issuerRef"]["name"] in docs
    assert "orders:1.0.0" in docs
