"""Long-lived JWKS caches shared across config reloads.

A reload that keeps a provider's key source keeps its cache (and its keys), so a reload never
makes requests wait for a fetch; sources no longer configured are closed.
"""

from __future__ import annotations

from collections.abc import Iterable

from authz_service.authn.jwks import JwksCache
from authz_service.schema import JwksSettings, JwtProvider

CacheKey = tuple[str, str | None, JwksSettings]


def cache_key(provider: JwtProvider) -> CacheKey:
    if provider.jwks_uri:
        return (provider.jwks_uri, None, provider.jwks)
    return (provider.issuer, provider.issuer, provider.jwks)


class JwksRegistry:
    def __init__(self) -> None:
        self._caches: dict[CacheKey, JwksCache] = {}
        self._started = False

    def prepare(self, providers: Iterable[JwtProvider]) -> dict[str, JwksCache]:
        """Caches for `providers` by issuer, creating (not starting) the missing ones."""
        by_issuer: dict[str, JwksCache] = {}
        for provider in providers:
            key = cache_key(provider)
            cache = self._caches.get(key)
            if cache is None:
                uri, discovery, settings = key
                cache = JwksCache(uri, settings, discovery_issuer=discovery, name=provider.name)
                self._caches[key] = cache
            elif provider.name not in cache.name.split(", "):
                cache.name = f"{cache.name}, {provider.name}"  # one key set, several providers
            by_issuer[provider.issuer] = cache
        return by_issuer

    def start(self) -> None:
        """Start background refresh of every cache (needs a running event loop)."""
        self._started = True
        for cache in self._caches.values():
            cache.start()

    async def retain_only(self, providers: Iterable[JwtProvider]) -> None:
        """Close caches no provider uses any more; start new ones if running."""
        wanted = {cache_key(provider) for provider in providers}
        for key in [key for key in self._caches if key not in wanted]:
            await self._caches.pop(key).close()
        if self._started:
            self.start()

    async def close(self) -> None:
        for cache in self._caches.values():
            await cache.close()
        self._caches.clear()
