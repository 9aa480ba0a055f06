"""Long-lived introspection verifiers shared across config reloads.

A reload that keeps a provider's settings and client secret keeps its verifier (its cache,
its connections); a provider whose settings or secret changed (a rotated secret file) gets a
new one, and the old one is closed.
"""

from __future__ import annotations

from collections.abc import Iterable

from authz_service.authn.introspection import IntrospectionVerifier
from authz_service.schema import IntrospectionProvider
from authz_service.schema.secret_digest import secret_digest
from authz_service.telemetry.introspection_metrics import IntrospectionFigures


def figures_of(verifiers: Iterable[IntrospectionVerifier]) -> list[IntrospectionFigures]:
    """What the metrics show of each verifier (telemetry/introspection_metrics.py)."""
    return [
        IntrospectionFigures(
            verifier.provider.name,
            verifier.answers,
            verifier.failures,
            verifier.cache.hits,
            verifier.cache.misses,
            len(verifier.cache),
        )
        for verifier in verifiers
    ]


def _key(provider: IntrospectionProvider) -> str:
    # The secret's digest, not the secret: the key is only compared, but stays harmless.
    try:
        secret = secret_digest(provider.resolved_secret())
    except (OSError, ValueError):  # gone since the load checked it: the next call says so
        secret = ""
    return provider.model_dump_json() + secret


class IntrospectionRegistry:
    def __init__(self) -> None:
        self._verifiers: dict[str, IntrospectionVerifier] = {}

    def prepare(
        self, providers: Iterable[IntrospectionProvider]
    ) -> dict[str, IntrospectionVerifier]:
        """Verifiers for `providers` by name, creating the missing ones."""
        by_name: dict[str, IntrospectionVerifier] = {}
        for provider in providers:
            key = _key(provider)
            verifier = self._verifiers.get(key)
            if verifier is None:
                verifier = self._verifiers[key] = IntrospectionVerifier(provider)
            by_name[provider.name] = verifier
        return by_name

    async def retain_only(self, providers: Iterable[IntrospectionProvider]) -> None:
        wanted = {_key(provider) for provider in providers}
        for key in [key for key in self._verifiers if key not in wanted]:
            await self._verifiers.pop(key).close()

    async def close(self) -> None:
        for verifier in self._verifiers.values():
            await verifier.close()
        self._verifiers.clear()
