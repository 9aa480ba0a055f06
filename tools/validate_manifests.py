"""Validate every Kubernetes manifest under deploy/ against the Kubernetes API schemas.

    python -m tools.validate_manifests [--kubernetes-version 1.31] [PATH ...]

Every YAML document with an `apiVersion` and a `kind` is checked strictly (unknown fields are
errors) with the schemas `kubernetes-validate` ships, including the ConfigMaps a
kustomization's `configMapGenerator` would make. Custom resources (cert-manager, Gateway API,
Envoy Gateway, Istio, Prometheus Operator) have no schema there: they are listed as such, and
a kind outside those API groups without a schema is an error, never a silent pass.
Files that are not manifests (service configs, Envoy configs) are skipped by content.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DEPLOY = REPO_ROOT / "deploy"
# Minimum Kubernetes version the manifests are written for (HPA autoscaling/v2, PDB policy/v1,
# gRPC probes); they are checked against it and the newest version the schemas cover.
MIN_KUBERNETES = "1.27"

# API groups of the custom resources the examples use: their CRDs are not Kubernetes schemas.
CRD_GROUPS = frozenset(
    {
        "cert-manager.io",
        "gateway.networking.k8s.io",
        "gateway.envoyproxy.io",
        "security.istio.io",
        "install.istio.io",
        "monitoring.coreos.com",
    }
)


@dataclass(frozen=True)
class Resource:
    source: str  # file (and generator) it comes from
    document: dict[str, Any]

    @property
    def label(self) -> str:
        name = self.document.get("metadata", {}).get("name", "?")
        return f"{self.source}: {self.document.get('kind')}/{name}"


@dataclass(frozen=True)
class Report:
    valid: list[str]
    custom: list[str]
    errors: list[str]


def _documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _is_manifest(document: Any) -> bool:
    return isinstance(document, dict) and "apiVersion" in document and "kind" in document


def _generated_config_maps(kustomization: Path, document: dict[str, Any]) -> Iterator[Resource]:
    """The ConfigMaps `kubectl apply -k` would make from configMapGenerator entries."""
    namespace = document.get("namespace")
    for generator in document.get("configMapGenerator", []):
        data = {}
        for entry in generator.get("files", []):
            key, _, file_name = entry.rpartition("=")
            path = kustomization.parent / file_name
            data[key or Path(file_name).name] = path.read_text()
        metadata: dict[str, Any] = {"name": generator["name"]}
        if namespace:
            metadata["namespace"] = namespace
        config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
        yield Resource(f"{kustomization} (configMapGenerator)", config_map)


def resources(paths: Sequence[Path]) -> tuple[list[Resource], list[str]]:
    """Every manifest under `paths`, and problems found while reading them."""
    found: list[Resource] = []
    problems: list[str] = []
    files = sorted(
        file
        for path in paths
        for file in ([path] if path.is_file() else [*path.rglob("*.yaml"), *path.rglob("*.yml")])
    )
    for file in files:
        shown = str(file.relative_to(REPO_ROOT)) if file.is_relative_to(REPO_ROOT) else str(file)
        try:
            documents = _documents(file)
        except yaml.YAMLError as error:
            problems.append(f"{shown}: invalid YAML: {error}")
            continue
        for document in documents:
            if not _is_manifest(document):
                continue
            if document["kind"] == "Kustomization":
                for resource in document.get("resources", []):
                    if not (file.parent / resource).exists():
                        problems.append(f"{shown}: resource {resource} does not exist")
                try:
                    found.extend(_generated_config_maps(file, document))
                except OSError as error:
                    problems.append(f"{shown}: configMapGenerator: {error}")
                continue
            found.append(Resource(shown, document))
    return found, problems


def validate(found: Sequence[Resource], versions: Sequence[str]) -> Report:
    valid: list[str] = []
    custom: list[str] = []
    errors: list[str] = []
    for resource in found:
        group = str(resource.document["apiVersion"]).rpartition("/")[0]
        try:
            for version in versions:
                kubernetes_validate.validate(resource.document, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            if group in CRD_GROUPS:
                custom.append(resource.label)
            else:
                errors.append(f"{resource.label}: no Kubernetes schema for this kind")
            continue
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(part) for part in error.path) or "(top)"
            errors.append(f"{resource.label}: {where}: {error.message}")
            continue
        valid.append(resource.label)
    return Report(valid, custom, errors)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[DEPLOY])
    parser.add_argument(
        "--kubernetes-version",
        action="append",
        help=f"version(s) to check against (default: {MIN_KUBERNETES} and the newest known)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only errors and the total")
    args = parser.parse_args(argv)
    versions = args.kubernetes_version or [MIN_KUBERNETES, kubernetes_validate.latest_version()]
    found, problems = resources(args.paths)
    report = validate(found, versions)
    for label in [] if args.quiet else report.custom:
        print(f"custom resource, no Kubernetes schema: {label}")
    for problem in [*problems, *report.errors]:
        print(f"error: {problem}", file=sys.stderr)
    failed = len(problems) + len(report.errors)
    print(
        f"{len(report.valid)} manifests valid against Kubernetes {', '.join(versions)}; "
        f"{len(report.custom)} custom resources; {failed} errors"
    )
    return 1 if failed or not found else 0


if __name__ == "__main__":
    sys.exit(main())
