"""Shared readers for the deployment files: docker-compose, Kubernetes, Istio, Envoy Gateway."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import REPO_ROOT, REQUIRE_ALL, find_binary

DEPLOY = REPO_ROOT / "deploy"
K8S_SERVICE = DEPLOY / "kubernetes" / "authz-service"
K8S_SIDECAR = DEPLOY / "kubernetes" / "envoy-sidecar"


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def find(kind: str, name: str, directory: Path = DEPLOY) -> dict[str, Any]:
    for path in sorted(directory.rglob("*.yaml")):
        for doc in documents(path):
            if doc.get("kind") == kind and doc.get("metadata", {}).get("name") == name:
                return doc
    raise AssertionError(f"no {kind} {name!r} under {directory}")


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def envoy_validate(config: Path) -> subprocess.CompletedProcess[str]:
    """`envoy --mode validate` of a config file (output captured, never raising on failure)."""
    return subprocess.run(
        [find_binary("envoy"), "--mode", "validate", "-c", str(config), "--log-level", "error"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def docker_compose(*args: str) -> subprocess.CompletedProcess[str]:
    """`docker-compose ARGS` in the repository root (output captured); skips without the binary,
    fails instead under AUTHZ_TESTS_REQUIRE_ALL=1."""
    binary = shutil.which("docker-compose")
    if binary is None:
        message = "docker-compose is not installed (apt-get install docker-compose)"
        if REQUIRE_ALL:
            pytest.fail(message)
        pytest.skip(message)
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, check=False
    )


def volume_sources(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's volumes as {target: source}, in the short syntax or the long one."""
    volumes: dict[str, str] = {}
    for volume in service["volumes"]:
        if isinstance(volume, dict):
            volumes[volume["target"]] = volume["source"]
        else:
            source, target = volume.split(":")[:2]
            volumes[target] = source
    return volumes
