#!/usr/bin/env bash
# README command 2: lint, type-check and run every test (unit, integration, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh test
.venv/bin/ruff check authz_service tests tools benchmarks
.venv/bin/ruff format --check authz_service tests tools benchmarks
.venv/bin/mypy
scripts/gen-protos.sh --check
.venv/bin/python -m pytest -q "$@"
