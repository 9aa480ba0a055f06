#!/usr/bin/env bash
# README command 1: bring up the whole local stack (Envoy, authz_service, demo upstream, dev IdP).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh stack
exec .venv/bin/python -m tools.stack "$@"
