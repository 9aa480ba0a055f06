"""Opaque tokens -> an Identity, by asking their issuer (RFC 7662 introspection).

A token that is not a JWT, found in a source an introspection provider reads, is sent to
that provider's endpoint (authn/introspection_client.py). Concurrent requests with the same
token share one call (single-flight); answers are cached by the token's digest
(authn/introspection_cache.py). The answer's claims go through the same mapping as a JWT's:
subject, roles, scopes, tier, claims to headers.

An endpoint that does not answer usably gives `INTROSPECTION_UNAVAILABLE` (503: the token
may be good), logged once a second at most, with the reason and never the token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from authz_service.authn.claims import identity_from_claims, number
from authz_service.authn.introspection_cache import IntrospectionResultCache, token_digest
from authz_service.authn.introspection_client import IntrospectionClient, IntrospectionUnavailable
from authz_service.decisions import AuthMethod, AuthnFailure, Identity, Reason
from authz_service.schema import IntrospectionProvider
from authz_service.telemetry import tracing

log = logging.getLogger(__name__)

WallClock = Callable[[], float]
# Between two log lines about one provider's outage (the count of failures in between is
# logged): an endpoint down under load must not flood the log.
_LOG_INTERVAL_S = 1.0


def identity_from_answer(
    provider: IntrospectionProvider, answer: Mapping[str, Any], digest: str, now: float
) -> Identity | AuthnFailure:
    """What an introspection answer (`active` a boolean, see the client) says of the caller."""
    if answer.get("active") is not True:
        return AuthnFailure(Reason.TOKEN_INACTIVE, "token is not active")
    exp = number(answer.get("exp"))
    if "exp" in answer and exp is None:
        return AuthnFailure(Reason.MALFORMED_TOKEN, "introspection 'exp' is not a number")
    if exp is not None and exp <= now:
        return AuthnFailure(Reason.TOKEN_EXPIRED, "token has expired")
    nbf = number(answer.get("nbf"))
    if nbf is not None and nbf > now:
        return AuthnFailure(Reason.TOKEN_NOT_YET_VALID, "token is not valid yet")
    if "iss" in answer and answer["iss"] != provider.issuer:
        return AuthnFailure(Reason.WRONG_ISSUER, "token issuer is not accepted")
    if "aud" in answer and provider.audiences:
        audiences = answer["aud"] if isinstance(answer["aud"], list) else [answer["aud"]]
        if not set(provider.audiences).intersection(a for a in audiences if isinstance(a, str)):
            return AuthnFailure(Reason.WRONG_AUDIENCE, "token audience is not accepted")
    confirmation = answer.get("cnf")
    if isinstance(confirmation, dict) and "jkt" in confirmation:
        # DPoP proofs are checked for JWT providers' tokens only: a bound opaque token would
        # pass here without its proof, so it is refused.
        return AuthnFailure(Reason.INVALID_TOKEN, "DPoP-bound opaque tokens are not accepted")
    return identity_from_claims(
        provider,
        dict(answer),
        method=AuthMethod.INTROSPECTION,
        expires_at=exp,
        token_digest=digest,
    )


_UNAVAILABLE = AuthnFailure(
    Reason.INTROSPECTION_UNAVAILABLE, "the token issuer's introspection endpoint is unavailable"
)


class IntrospectionVerifier:
    def __init__(
        self,
        provider: IntrospectionProvider,
        client: IntrospectionClient | None = None,
        wall_clock: WallClock = time.time,
    ) -> None:
        self.provider = provider
        self.client = client if client is not None else IntrospectionClient(provider)
        self.cache = IntrospectionResultCache(provider.cache, wall_clock)
        self._clock = wall_clock
        self._inflight: dict[str, asyncio.Task[Identity | AuthnFailure]] = {}
        self._last_log = 0.0
        self._unlogged_failures = 0
        self.answers = 0  # calls the endpoint answered usably
        self.failures = 0  # requests answered 503 (metrics)

    async def verify(self, token: str) -> Identity | AuthnFailure:
        if len(token) > self.provider.max_token_bytes:
            return AuthnFailure(Reason.TOKEN_TOO_LARGE, "token is too large", "invalid_request")
        digest = token_digest(token)
        cached = self.cache.get(digest)
        if cached is not None:
            return cached
        task = self._inflight.get(digest)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._introspect(token, digest))
            self._inflight[digest] = task
            task.add_done_callback(lambda _done: self._inflight.pop(digest, None))
        # Shield: a caller that gives up (its deadline) must not cancel the shared call.
        return await asyncio.shield(task)

    async def _introspect(self, token: str, digest: str) -> Identity | AuthnFailure:
        with tracing.child_span("authz.introspect", {"authz.provider": self.provider.name}):
            try:
                answer = await self.client.introspect(token)
            except IntrospectionUnavailable as error:
                self._log_failure(str(error))
                return _UNAVAILABLE
        self.answers += 1
        result = identity_from_answer(self.provider, answer, digest, self._clock())
        self.cache.put(digest, result)
        return result

    def _log_failure(self, why: str) -> None:
        self.failures += 1
        self._unlogged_failures += 1
        now = time.monotonic()
        if now - self._last_log < _LOG_INTERVAL_S:
            return
        log.warning(
            "introspection provider %s (%s): %s; %d request(s) answered 503 since the last line",
            self.provider.name,
            self.provider.introspection_endpoint,
            why,
            self._unlogged_failures,
        )
        self._last_log = now
        self._unlogged_failures = 0

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await self.client.close()
