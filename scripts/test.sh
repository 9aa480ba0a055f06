#!/usr/bin/env bash
# README command 2: lint, type-check and run every test (unit, integration, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-packages.sh
scripts/setup-venv.sh test
# The tests' real authorization server (oidc-provider on Node).
scripts/setup-test-issuer.sh
.venv/bin/ruff check authz_service tests tools benchmarks
.venv/bin/ruff format --check authz_service tests tools benchmarks
.venv/bin/mypy
# The layers of docs/architecture.md ([tool.importlinter] in pyproject.toml).
.venv/bin/lint-imports
scripts/gen-protos.sh --check
# Deployment files: Dockerfiles linted, Kubernetes manifests against the Kubernetes schemas,
# the generated config reference and JSON Schema current.
.venv/bin/hadolint Dockerfile compose/images/*/Containerfile
.venv/bin/python -m tools.validate_manifests --quiet
.venv/bin/python -m tools.config_reference --check
# The shipped policies' own tests (NAME.tests.yaml beside each config), offline; the deployed
# configs name their rate-limit files by where they are mounted.
.venv/bin/python -m authz_service test config/local.yaml --require-coverage
.venv/bin/python -m authz_service test compose/authz/config.yaml deploy/kubernetes/authz-service/config.yaml \
  --rate-limit-dir examples/ratelimit/domains --require-coverage
.venv/bin/python -m pytest -q "$@"
