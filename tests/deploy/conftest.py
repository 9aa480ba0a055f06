"""Shared readers for the deployment files: docker-compose, Kubernetes, Istio, Envoy Gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.support import REPO_ROOT

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
