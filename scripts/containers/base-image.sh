#!/usr/bin/env bash
# The base image the Dockerfile names (python:3.11-slim), made without any registry: a Debian
# bookworm rootfs (Python 3.11 is Debian's) from the package mirror apt already uses, imported
# into podman and tagged under that name. The rootfs tarball is cached outside the repository
# (AUTHZ_CONTAINER_CACHE, default /var/cache/authz-service) so later runs on the same machine
# import it in seconds; a fresh machine builds it (a few minutes).
#
#   scripts/containers/base-image.sh          # ensure the image exists; prints its name
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
cache="${AUTHZ_CONTAINER_CACHE:-/var/cache/authz-service}"
# What the image is made of: change it and the cache key changes with it.
packages="python3,python3-venv,python-is-python3,ca-certificates,libstdc++6,curl"
key=$(printf '%s\n' "$packages" "$(cat /etc/ssl/certs/ca-certificates.crt /etc/pip.conf 2>/dev/null)" \
  | sha256sum | cut -c1-12)
base_ref="localhost/authz-base/bookworm-python:$key"
tags=(docker.io/library/python:3.11-slim)

log() { echo "base-image: $*" >&2; }

if ! podman image exists "$base_ref"; then
  tarball="$cache/bookworm-python-$key.tar"
  if [ ! -s "$tarball" ]; then
    mkdir -p "$cache"
    mirror=$(apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 2>/dev/null \
      | awk '$1 == "bookworm" {print $2; exit}')
    if [ -z "$mirror" ]; then
      log "no bookworm mirror in apt's sources: run apt-get update first"
      exit 1
    fi
    rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    log "debootstrap bookworm from apt's mirror into $rootfs (a few minutes, once per machine)"
    debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" \
      > "$cache/debootstrap.log" 2>&1 || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    # pip inside a build reaches the package index only if the image trusts the host's CAs.
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    if [ -f /etc/pip.conf ]; then cp /etc/pip.conf "$rootfs/etc/pip.conf"; fi
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
    trap - EXIT
  fi
  log "importing $tarball"
  podman import --quiet --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' \
    "$tarball" "$base_ref" >/dev/null
fi
for tag in "${tags[@]}"; do
  podman tag "$base_ref" "$tag"
done
echo "$base_ref"
