#!/usr/bin/env bash
# Create .venv (if missing) and install the project with its test and stack dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  scripts/fix-otel-protos.sh .venv/bin/python
  rm -f .venv/.installed-*
  touch "$stamp"
fi
