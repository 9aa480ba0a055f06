#!/usr/bin/env bash
# DEVELOPMENT-ONLY certificates for the gateway (a local CA, Envoy's HTTPS certificate, the
# service's): ./scripts/dev-cert.sh [DIR]   (default: compose/certs, what docker-compose mounts)
# docker-compose runs the same generator itself (service dev-certs); the local stack and the
# tests make their own. Needs Python with `cryptography` (the project's .venv has it).
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
[ -x "$python" ] || python=python3
exec "$python" tools/dev_cert.py --out "${1:-compose/certs}" --readable-keys
