"""Everything compiled from one config file: what a reload swaps atomically.

Long-lived resources (JWKS caches, the quota store and its connections) live outside a
CompiledConfig and are shared by successive ones, so a reload keeps keys, counters and connections.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from authz_service.authn.authenticator import Authenticator
from authz_service.authn.dpop import DpopVerifier
from authz_service.authn.introspection_registry import IntrospectionRegistry
from authz_service.authn.jwks_registry import JwksRegistry
from authz_service.authn.replay import ReplayGuard
from authz_service.authz.method_overrides import MethodOverrides
from authz_service.authz.rbac import ConditionError, PolicySet
from authz_service.config.loader import ConfigError, LoadedConfig
from authz_service.config.secrets import check_secrets
from authz_service.ratelimit.factory import build_limiter, build_store
from authz_service.ratelimit.limiter import RateLimiter
from authz_service.ratelimit.outages import StoreOutages
from authz_service.ratelimit.rules import rules_of_loaded_config
from authz_service.ratelimit.store import QuotaStore
from authz_service.schema import RateLimitSettings
from authz_service.services.check_quota import CheckQuotaDescriptors
from authz_service.services.response_policy import ResponsePolicy

log = logging.getLogger(__name__)


class QuotaStoreHolder:
    """The process's quota store, built once from the first config that names one.

    Store settings (backend, Redis URL) take effect at start; a reload that changes them is
    reported and keeps the running store, while limits and failure behaviour do reload.
    """

    def __init__(self) -> None:
        self.store: QuotaStore | None = None
        self._settings: RateLimitSettings | None = None
        # As long-lived as the store: outage log lines and counts survive reloads.
        self.outages = StoreOutages()

    def store_for(self, settings: RateLimitSettings) -> QuotaStore:
        if self.store is None:
            self.store = build_store(settings)
            self._settings = settings
        elif self._settings is not None and _store_identity(settings) != _store_identity(
            self._settings
        ):
            log.warning("rate_limit store settings changed: restart the service to apply them")
        return self.store

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()
            self.store = None


def _store_identity(settings: RateLimitSettings) -> tuple[object, ...]:
    return (
        settings.store,
        settings.redis,
        settings.circuit_breaker,
        settings.local_over_limit_cache,
        settings.local_cache_max_entries,
        settings.memory_max_keys,
    )


@dataclass(frozen=True, slots=True)
class CompiledConfig:
    loaded: LoadedConfig
    authenticator: Authenticator
    policies: PolicySet
    responses: ResponsePolicy
    loaded_at: float
    limiter: RateLimiter | None = None
    quota: CheckQuotaDescriptors | None = None
    replay: ReplayGuard | None = None
    dpop: DpopVerifier | None = None
    method_overrides: MethodOverrides = field(default_factory=MethodOverrides)

    @property
    def version(self) -> str:
        return self.loaded.digest[:12]


def compile_config(
    loaded: LoadedConfig,
    registry: JwksRegistry,
    stores: QuotaStoreHolder | None = None,
    introspection: IntrospectionRegistry | None = None,
) -> CompiledConfig:
    """Compile a loaded config. Raises ConfigError for problems only visible when compiling.
    Without `introspection` (offline tools), introspection providers get fresh verifiers."""
    config = loaded.config
    check_secrets(loaded)
    verifiers = (introspection or IntrospectionRegistry()).prepare(config.introspection_providers)
    authenticator = Authenticator(
        config, registry.prepare(config.jwt_providers), introspection=verifiers
    )
    limiter = None
    quota = None
    settings = config.rate_limit
    limits = rules_of_loaded_config(loaded)
    if settings is not None and limits is not None:
        holder = stores or QuotaStoreHolder()
        limiter = build_limiter(settings, limits, holder.store_for(settings), holder.outages)
        if config.check_quota is not None:
            if not limits.has_domain(config.check_quota.domain):
                line = loaded.lines.get(("check_quota", "domain"))
                where = f"{loaded.path}:{line}" if line else str(loaded.path)
                raise ConfigError(
                    f"{where}: check_quota.domain: no rate-limit domain "
                    f"{config.check_quota.domain!r} (known: {', '.join(sorted(limits.domains))})"
                )
            quota = CheckQuotaDescriptors(config.check_quota)
    dpop = None
    if config.jwt_providers:
        # Any JWT provider may issue DPoP-bound tokens: their proofs' jtis go to the quota
        # store (Redis: shared by replicas); without rate_limit, a memory store.
        holder = stores or QuotaStoreHolder()
        store = holder.store_for(config.rate_limit or RateLimitSettings())
        dpop = DpopVerifier.for_providers(config.jwt_providers, store)
    replay = None
    if any(p.replay_protection.enabled for p in config.jwt_providers):
        # The quota store (Redis: shared by replicas); without rate_limit, a memory store.
        holder = stores or QuotaStoreHolder()
        store = holder.store_for(config.rate_limit or RateLimitSettings())
        replay = ReplayGuard.for_providers(config.jwt_providers, store, outages=holder.outages)
    try:
        policies = PolicySet(config.policies, config.policy_selection)
    except ConditionError as error:
        line = loaded.lines.get(error.location)
        where = f"{loaded.path}:{line}" if line else str(loaded.path)
        field = ".".join(str(part) for part in error.location)
        raise ConfigError(f"{where}: {field}: {error}") from None
    return CompiledConfig(
        loaded=loaded,
        authenticator=authenticator,
        policies=policies,
        responses=ResponsePolicy(config, authenticator.credential_headers()),
        loaded_at=time.time(),
        limiter=limiter,
        quota=quota,
        replay=replay,
        dpop=dpop,
        method_overrides=MethodOverrides(config.method_overrides),
    )
