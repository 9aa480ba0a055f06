"""Everything compiled from one config file: what a reload swaps atomically."""

from __future__ import annotations

import time
from dataclasses import dataclass

from authz_service.authn.authenticator import Authenticator
from authz_service.authn.jwks_registry import JwksRegistry
from authz_service.authz.rbac import PolicySet
from authz_service.config.loader import LoadedConfig
from authz_service.response_policy import ResponsePolicy


@dataclass(frozen=True, slots=True)
class Runtime:
    loaded: LoadedConfig
    authenticator: Authenticator
    policies: PolicySet
    responses: ResponsePolicy
    loaded_at: float

    @property
    def version(self) -> str:
        return self.loaded.digest[:12]


def build_runtime(loaded: LoadedConfig, registry: JwksRegistry) -> Runtime:
    config = loaded.config
    authenticator = Authenticator(config, registry.prepare(config.jwt_providers))
    return Runtime(
        loaded=loaded,
        authenticator=authenticator,
        policies=PolicySet(config.policies, config.policy_selection),
        responses=ResponsePolicy(config, authenticator.credential_headers()),
        loaded_at=time.time(),
    )
