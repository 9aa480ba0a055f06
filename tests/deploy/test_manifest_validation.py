"""tools.validate_manifests: every manifest under deploy/ passes the Kubernetes schemas, and
the check can fail (a wrong field, an unknown kind, a missing kustomization resource)."""

from __future__ import annotations

from pathlib import Path

from tools.validate_manifests import DEPLOY, main, resources, validate

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: demo}
spec:
  selector: {matchLabels: {app: demo}}
  template:
    metadata: {labels: {app: demo}}
    spec:
      containers:
        - name: demo
          image: demo:1
          %s
"""


def test_every_shipped_manifest_is_valid_against_the_kubernetes_schemas() -> None:
    found, problems = resources([DEPLOY])
    report = validate(found, ["1.27", "1.37"])

    assert problems == []
    assert report.errors == []
    kinds = {resource.document["kind"] for resource in found}
    assert {"Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler"} <= kinds
    # The kustomizations' generated ConfigMaps are checked too.
    assert any("configMapGenerator" in label for label in report.valid)


def test_a_misspelled_field_fails(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(DEPLOYMENT % "imagePullPolicy: Always\n          prots: []")

    assert main([str(tmp_path)]) == 1


def test_a_well_formed_manifest_passes(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(DEPLOYMENT % "imagePullPolicy: Always")

    assert main([str(tmp_path)]) == 0


def test_an_unknown_kind_outside_the_known_crd_groups_fails(tmp_path: Path) -> None:
    (tmp_path / "odd.yaml").write_text(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"
    )

    assert main([str(tmp_path)]) == 1


def test_a_kustomization_naming_a_missing_file_fails(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [gone.yaml]\n"
    )

    assert main([str(tmp_path)]) == 1
