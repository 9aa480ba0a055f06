#!/usr/bin/env bash
# Create .venv (if missing) and install the project with the extras a command needs:
#   scripts/setup-venv.sh stack     ./scripts/stack.sh: the service and the real Envoy binary
#   scripts/setup-venv.sh test      ./scripts/test.sh: also test runners, linters, gateways
#   scripts/setup-venv.sh bench     benchmarks (charts)
# Each set is installed once per pyproject.toml version (a stamp file in .venv); installing
# a larger set later adds to the same virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-test}"
PYTHON="${PYTHON:-python3}"
step() { echo "setup-venv: $*" >&2; }
if [ ! -x .venv/bin/python ]; then
  step "creating .venv"
  "$PYTHON" -m venv .venv
fi
version=$(sha256sum pyproject.toml | cut -c1-16)
stamp=".venv/.installed-$version-$extras"
# The dev set includes every other one.
if [ -f "$stamp" ] || [ -f ".venv/.installed-$version-dev" ]; then
  exit 0
fi
started=$SECONDS
step "installing authz-service[$extras] into .venv (first run: about a minute; pip's steps below)"
.venv/bin/python -m pip install --quiet --upgrade pip
# pip's own progress, one line per package it fetches or installs, instead of silence.
.venv/bin/python -m pip install --progress-bar off -e ".[$extras]" 2>&1 \
  | grep --line-buffered -E '^(Collecting|Installing collected|Successfully installed|ERROR)' \
  | sed -u -e 's/^/  pip: /' -e 's/^\(.\{0,120\}\).*/\1/' >&2 || true
if ! .venv/bin/python -c 'import authz_service' 2>/dev/null \
  || ! .venv/bin/python -m pip check >/dev/null 2>&1; then
  step "pip did not finish: run .venv/bin/python -m pip install -e '.[$extras]' to see why"
  exit 1
fi
scripts/fix-otel-protos.sh .venv/bin/python
rm -f .venv/.installed-*"-$extras" ".venv/.installed-$version-$extras"
# Stamps of other versions are stale.
find .venv -maxdepth 1 -name '.installed-*' ! -name ".installed-$version-*" -delete
touch "$stamp"
step "done in $((SECONDS - started)) s ($(du -sh .venv | cut -f1) in .venv)"
