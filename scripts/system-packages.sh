#!/usr/bin/env bash
# The system packages the tests run for real: installed when run as root, named otherwise.
set -euo pipefail

# Real components the tests run: Redis, docker-compose (config validation only), and for the
# benchmark smoke test h2load, wrk, a C compiler and libnghttp2 (the h2grpc load generator).
needed=()
command -v redis-server >/dev/null 2>&1 || needed+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || needed+=(redis-tools)
command -v docker-compose >/dev/null 2>&1 || needed+=(docker-compose)
command -v h2load >/dev/null 2>&1 || needed+=(nghttp2-client)
command -v wrk >/dev/null 2>&1 || needed+=(wrk)
# curl sends HTTP/2 requests with raw request targets in the path-spelling e2e tests.
command -v curl >/dev/null 2>&1 || needed+=(curl)
command -v nginx >/dev/null 2>&1 || needed+=(nginx)
command -v cc >/dev/null 2>&1 || needed+=(gcc)
[ -e /usr/include/nghttp2/nghttp2.h ] || needed+=(libnghttp2-dev)
command -v promtool >/dev/null 2>&1 || needed+=(prometheus)
# The image and compose tests: podman/buildah build and run the images, debootstrap makes the
# base image from the package mirror (no registry), node/npm run the compose OIDC provider
# and the tests' authorization server (scripts/setup-test-issuer.sh installs its packages).
command -v podman >/dev/null 2>&1 || needed+=(podman)
command -v buildah >/dev/null 2>&1 || needed+=(buildah)
command -v debootstrap >/dev/null 2>&1 || needed+=(debootstrap)
command -v fuse-overlayfs >/dev/null 2>&1 || needed+=(fuse-overlayfs)
command -v slirp4netns >/dev/null 2>&1 || needed+=(slirp4netns)
command -v newuidmap >/dev/null 2>&1 || needed+=(uidmap)
command -v node >/dev/null 2>&1 || needed+=(nodejs)
command -v npm >/dev/null 2>&1 || needed+=(npm)
[ ${#needed[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-packages: installing ${needed[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${needed[@]}" >/dev/null
else
  echo "system-packages: missing ${needed[*]} (install them, e.g. apt-get install ${needed[*]})" >&2
fi

