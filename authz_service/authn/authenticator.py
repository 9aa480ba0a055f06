"""Credentials in a request -> an Identity, an AuthnFailure, or None (nothing presented).

Order: a bearer token from any configured source, then an API key, then the mTLS peer.
A credential that is presented and fails is a failure; we never fall back to a weaker one.

A token that is not a JWT (the structural check refuses it as malformed) goes to the first
introspection provider that reads the source it was found in and serves the request's policy
(RFC 7662, authn/introspection.py); with none, it is refused as malformed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

from authz_service.authn.introspection import IntrospectionVerifier
from authz_service.authn.jwks import JwksCache
from authz_service.authn.jwt_provider import JwtProviderVerifier
from authz_service.authn.token_cache import TokenCache
from authz_service.authn.tokens import peek
from authz_service.authz.globs import compile_glob
from authz_service.decisions import AuthMethod, AuthnFailure, Identity, Reason, RequestAttributes
from authz_service.schema import ApiKeySettings, Config, MtlsSettings, TokenSource
from authz_service.schema.secret_digest import secret_digest

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PresentedToken:
    value: str
    source: TokenSource


def read_cookie(cookie_header: str, name: str) -> str | None:
    jar = SimpleCookie()
    try:
        jar.load(cookie_header)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def extract_token(headers: Mapping[str, str], source: TokenSource) -> str | None:
    if source.header is not None:
        value = headers.get(source.header)
        if value is None:
            return None
        if source.prefix:
            if value[: len(source.prefix)].lower() != source.prefix.lower():
                return None
            value = value[len(source.prefix) :]
        return value.strip() or None
    assert source.cookie is not None
    cookie_header = headers.get("cookie")
    return read_cookie(cookie_header, source.cookie) if cookie_header else None


class ApiKeyAuthenticator:
    def __init__(self, settings: ApiKeySettings):
        self.header = settings.header
        self._by_hash = {
            key.hash: Identity(
                principal=key.principal,
                method=AuthMethod.API_KEY,
                roles=frozenset(key.roles),
                scopes=frozenset(key.scopes),
                tier=key.tier,
            )
            for key in settings.keys
        }

    def authenticate(self, presented: str) -> Identity | AuthnFailure:
        identity = self._by_hash.get(secret_digest(presented))
        if identity is None:
            return AuthnFailure(Reason.INVALID_API_KEY, "API key is not valid")
        return identity


class PeerAuthenticator:
    def __init__(self, settings: MtlsSettings):
        self.enabled = settings.authenticate_peers
        self._trusted = [compile_glob(pattern) for pattern in settings.trusted_principals]
        self._roles = [
            (compile_glob(pattern), frozenset(roles)) for pattern, roles in settings.roles.items()
        ]

    def authenticate(self, peer_principal: str) -> Identity | None:
        if not self.enabled or not peer_principal:
            return None
        if not any(pattern.fullmatch(peer_principal) for pattern in self._trusted):
            return None
        roles: set[str] = set()
        for pattern, granted in self._roles:
            if pattern.fullmatch(peer_principal):
                roles.update(granted)
        return Identity(principal=peer_principal, method=AuthMethod.MTLS, roles=frozenset(roles))


class Authenticator:
    def __init__(
        self,
        config: Config,
        jwks_by_issuer: Mapping[str, JwksCache],
        *,
        token_cache: TokenCache | None = None,
        wall_clock: Callable[[], float] = time.time,
        introspection: Mapping[str, IntrospectionVerifier] | None = None,
    ) -> None:
        """`jwks_by_issuer` holds the (shared, long-lived) JWKS cache of each provider,
        `introspection` the (shared, long-lived) verifier of each introspection provider."""
        self._verifiers = {
            provider.issuer: JwtProviderVerifier(
                provider, jwks_by_issuer[provider.issuer], wall_clock
            )
            for provider in config.jwt_providers
        }
        # Introspection providers in config order: the first that reads a source gets the
        # opaque tokens found there.
        introspection = introspection or {}
        self._introspection = [
            introspection[provider.name] for provider in config.introspection_providers
        ]
        self._policy_selection = config.policy_selection
        sources: dict[TokenSource, None] = {}
        for provider in config.jwt_providers:
            for source in provider.token_sources:
                sources[source] = None
        for verifier in self._introspection:
            for source in verifier.provider.token_sources:
                sources[source] = None
        self._sources = tuple(sources)
        self._max_token_bytes = max((p.max_token_bytes for p in config.jwt_providers), default=8192)
        self.api_keys = ApiKeyAuthenticator(config.api_keys) if config.api_keys.keys else None
        self.peers = PeerAuthenticator(config.mtls)
        self.token_cache = (
            token_cache
            if token_cache is not None
            else TokenCache(config.token_cache_max_entries, wall_clock)
        )

    @property
    def verifiers(self) -> Mapping[str, JwtProviderVerifier]:
        return self._verifiers

    @property
    def introspection(self) -> list[IntrospectionVerifier]:
        return self._introspection

    def introspection_for(self, source: TokenSource, policy: str) -> IntrospectionVerifier | None:
        """The introspection provider that reads opaque tokens from `source` for requests
        decided under `policy`, if any."""
        for verifier in self._introspection:
            provider = verifier.provider
            if source in provider.token_sources and (
                not provider.policies or policy in provider.policies
            ):
                return verifier
        return None

    def credential_headers(self) -> frozenset[str]:
        """Request headers that carry credentials (stripped before the upstream if configured)."""
        names = {source.header for source in self._sources if source.header}
        if self.api_keys is not None:
            names.add(self.api_keys.header)
        return frozenset(name for name in names if name)

    def find_token(self, headers: Mapping[str, str]) -> PresentedToken | None:
        for source in self._sources:
            token = extract_token(headers, source)
            if token is not None:
                return PresentedToken(token, source)
        return None

    async def authenticate(self, request: RequestAttributes) -> Identity | AuthnFailure | None:
        presented = self.find_token(request.headers)
        if presented is not None:
            selection = self._policy_selection
            policy = request.context.get(selection.context_key, selection.default)
            return await self.authenticate_token(presented, policy)
        if self.api_keys is not None:
            api_key = request.headers.get(self.api_keys.header)
            if api_key is not None:
                return self.api_keys.authenticate(api_key)
        return self.peers.authenticate(request.peer_principal)

    def describe_credential(
        self, request: RequestAttributes, authn: Identity | AuthnFailure | None
    ) -> str:
        """Which credential `request` presents, never its value (explain)."""
        token = self.find_token(request.headers)
        if token is not None:
            source = token.source
            where = f"header {source.header}" if source.header else f"cookie {source.cookie}"
            if isinstance(authn, Identity) and authn.method is AuthMethod.INTROSPECTION:
                return f"opaque token from {where}, introspected"
            return f"bearer token from {where}"
        if self.api_keys is not None and self.api_keys.header in request.headers:
            return f"API key from header {self.api_keys.header}"
        if isinstance(authn, Identity):
            return "mTLS peer identity"
        return "none"

    def _accepts_from(self, issuer: str, source: TokenSource) -> bool:
        """Is `issuer`'s token accepted from where this one was found? Asked on cache hits
        too: a token verified from one provider's header must not pass in another's cookie."""
        verifier = self._verifiers.get(issuer)
        return verifier is not None and source in verifier.provider.token_sources

    async def authenticate_token(
        self, presented: PresentedToken, policy: str = ""
    ) -> Identity | AuthnFailure:
        """`policy`: the policy the request is decided under (which introspection provider
        serves it)."""
        cached = self.token_cache.get(presented.value)
        if cached is not None and self._accepts_from(cached.issuer, presented.source):
            return cached
        inspected = peek(presented.value, self._max_token_bytes)
        if isinstance(inspected, AuthnFailure) and inspected.reason is Reason.MALFORMED_TOKEN:
            introspection = self.introspection_for(presented.source, policy)
            if introspection is not None:  # not a JWT: an opaque token for its issuer to judge
                return await introspection.verify(presented.value)
        if isinstance(inspected, AuthnFailure):
            # One line, what was wrong and never the token: hostile tokens are routine.
            log.info("bearer token refused before verification: %s", inspected.message)
            return inspected
        verifier = self._verifiers.get(inspected.issuer)
        if verifier is None:
            return AuthnFailure(Reason.UNKNOWN_ISSUER, "token issuer is not trusted")
        provider = verifier.provider
        if not self._accepts_from(inspected.issuer, presented.source):
            return AuthnFailure(Reason.UNKNOWN_ISSUER, "token issuer is not trusted here")
        if len(presented.value) > provider.max_token_bytes:
            return AuthnFailure(Reason.TOKEN_TOO_LARGE, "token is too large", "invalid_request")
        result = await verifier.verify(presented.value, inspected)
        if isinstance(result, Identity):
            self.token_cache.put(presented.value, result)
        return result
