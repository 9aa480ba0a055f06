#!/usr/bin/env bash
# README command 2: lint, type-check and run every test (unit, integration, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
.venv/bin/ruff check authz_service tests tools benchmarks
.venv/bin/ruff format --check authz_service tests tools benchmarks
.venv/bin/mypy
# The layers of docs/architecture.md ([tool.importlinter] in pyproject.toml).
.venv/bin/lint-imports
scripts/gen-protos.sh --check
.venv/bin/python -m pytest -q "$@"
