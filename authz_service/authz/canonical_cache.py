"""Canonical paths and hosts, kept for the requests a warm load repeats.

Canonicalising a path (authz/paths.py) is the dearest pure step of RBAC after matching, and
a warm load sends the same few paths and hosts again and again: each is worked out once and
kept in an LRU. What is refused (AmbiguousPath, AmbiguousHost) is never kept. Only keys up
to CACHED_BYTES are kept, so that long ones (a path may be tens of KB) cannot fill the
caches with megabytes; longer ones are worked out every time.
"""

from __future__ import annotations

import functools

from authz_service.authz.hosts import canonical_host
from authz_service.authz.paths import canonical_path

CANONICAL_CACHE_ENTRIES = 8192
# The same bound for CompiledPolicy's rules-that-apply cache (rbac.py), one per policy.
APPLICABLE_CACHE_ENTRIES = 4096
CACHED_BYTES = 512

_cached_path = functools.lru_cache(maxsize=CANONICAL_CACHE_ENTRIES)(canonical_path)
_cached_host = functools.lru_cache(maxsize=CANONICAL_CACHE_ENTRIES)(canonical_host)


def canonical_path_cached(path: str) -> str:
    """canonical_path(path), from the cache when `path` is short enough to be kept."""
    return _cached_path(path) if len(path) <= CACHED_BYTES else canonical_path(path)


def canonical_host_cached(host: str) -> str:
    """canonical_host(host), from the cache when `host` is short enough to be kept."""
    return _cached_host(host) if len(host) <= CACHED_BYTES else canonical_host(host)


def path_cache_size() -> int:
    """Paths kept now (for tests of the bound)."""
    return _cached_path.cache_info().currsize
