"""The Check use case: authenticate, authorize, answer. Transport-agnostic.

Any unexpected error becomes a deny (fail closed): an authorization service that allows on
its own bugs is worse than none.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from authz_service.authn.replay import ReplayVerdict
from authz_service.authn.revocation import RevocationList
from authz_service.authz.method_overrides import decide_with_overrides
from authz_service.authz.rbac import Trace
from authz_service.decisions import (
    AuthnFailure,
    Decision,
    Identity,
    Outcome,
    Reason,
    RequestAttributes,
)
from authz_service.ratelimit.limiter import RateLimiter
from authz_service.ratelimit.response import over_limit_body, rate_limit_headers
from authz_service.ratelimit.results import LockoutState, RateLimitResult
from authz_service.ratelimit.store import StoreUnavailable
from authz_service.services.check_quota import CheckQuotaDescriptors, Entry
from authz_service.services.compiled_config import CompiledConfig
from authz_service.telemetry import tracing

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QuotaPreview:
    """What the one-call quota would answer the next request, with nothing charged."""

    domain: str
    descriptors: tuple[tuple[Entry, ...], ...]
    result: RateLimitResult | None  # None: the store could not answer


@dataclass(frozen=True, slots=True)
class Explanation:
    decision: Decision
    trace: Trace
    credential: str  # which credential was found, never its value
    lockout: LockoutState | None = None  # None: brute-force lockout off or no source address
    quota: QuotaPreview | None = None  # None: no quota in Check, or the request is refused


class CheckService:
    def __init__(
        self, current: Callable[[], CompiledConfig], revocations: RevocationList | None = None
    ):
        self._current = current
        self._revocations = revocations if revocations is not None else RevocationList()

    def compiled_config(self) -> CompiledConfig:
        return self._current()

    async def check(self, request: RequestAttributes) -> tuple[Decision, CompiledConfig]:
        compiled = self._current()
        try:
            return await self._decide(compiled, request), compiled
        except Exception:
            log.exception("check failed; denying")
            return Decision(Outcome.UNAVAILABLE, Reason.INTERNAL_ERROR, "internal error"), compiled

    async def _decide(self, compiled: CompiledConfig, request: RequestAttributes) -> Decision:
        limiter = compiled.limiter
        client_ip = request.source_address
        brute_force = limiter is not None and limiter.brute_force_enabled and bool(client_ip)
        if brute_force:
            assert limiter is not None
            lockout = await limiter.lockout_state(client_ip)
            if lockout.locked:
                return _locked_out(lockout.retry_after)
        with tracing.child_span("authz.authenticate") as span:
            cache = compiled.authenticator.token_cache
            hits_before = cache.hits
            authn = await self._authenticate(compiled, request)
            if span.is_recording():
                span.set_attribute("authz.token_cache_hit", cache.hits > hits_before)
                if isinstance(authn, AuthnFailure):
                    span.set_attribute("authz.reason", authn.reason.value)
        if brute_force and isinstance(authn, AuthnFailure):
            assert limiter is not None
            await limiter.record_auth_failure(client_ip)
        with tracing.child_span("authz.rbac"):
            decision = _authorize(compiled, request, authn)
        if decision.allowed and decision.identity is not None and compiled.replay is not None:
            # After RBAC: only a use that would be allowed consumes a one-time token.
            verdict = await compiled.replay.check(decision.identity)
            if not verdict.allowed:
                return _replay_refused(verdict, decision)
        if decision.allowed and compiled.quota is not None and limiter is not None:
            with tracing.child_span(
                "authz.quota", {"authz.ratelimit.domain": compiled.quota.domain}
            ):
                return await _enforce_quota(compiled.quota, limiter, request, decision)
        return decision

    async def explain(self, request: RequestAttributes) -> Explanation:
        """Check's decision with every step shown and no side effect: no quota charged, no
        failure counted, no one-time token used. A lockout still shows how RBAC would decide."""
        compiled = self._current()
        limiter = compiled.limiter
        lockout = None
        if limiter is not None and limiter.brute_force_enabled and request.source_address:
            lockout = await limiter.lockout_state(request.source_address)
        trace = Trace()
        authn = await self._authenticate(compiled, request)
        decision = _authorize(compiled, request, authn, trace)
        credential = _describe_credential(compiled, request, authn)
        if lockout is not None and lockout.locked:
            locked = _locked_out(lockout.retry_after)
            locked = replace(locked, policy=decision.policy, identity=decision.identity)
            return Explanation(locked, trace, credential, lockout)
        quota = None
        if decision.allowed and compiled.quota is not None and limiter is not None:
            check_quota = compiled.quota
            descriptors = check_quota.descriptors(request, decision.identity)
            if descriptors:
                try:
                    result = await limiter.preview_descriptors(check_quota.domain, descriptors)
                except StoreUnavailable:
                    result = None
                decision = _quota_decision(result, decision)
                entries = tuple(tuple(entry) for entry in descriptors)
                quota = QuotaPreview(check_quota.domain, entries, result)
        return Explanation(decision, trace, credential, lockout, quota)

    async def _authenticate(
        self, compiled: CompiledConfig, request: RequestAttributes
    ) -> Identity | AuthnFailure | None:
        authn = await compiled.authenticator.authenticate(request)
        if isinstance(authn, Identity) and self._revocations.is_revoked(authn):
            return AuthnFailure(Reason.TOKEN_REVOKED, "token has been revoked")
        return authn


def _authorize(
    compiled: CompiledConfig,
    request: RequestAttributes,
    authn: Identity | AuthnFailure | None,
    trace: Trace | None = None,
) -> Decision:
    """RBAC on the request as sent, then on every method its overrides claim."""
    decision = compiled.policies.authorize(request, authn, trace)
    if not decision.allowed:
        return decision
    return decide_with_overrides(
        compiled.method_overrides,
        request,
        decision,
        lambda overridden: compiled.policies.authorize(overridden, authn),
    )


def _replay_refused(verdict: ReplayVerdict, decision: Decision) -> Decision:
    if verdict is ReplayVerdict.STORE_UNAVAILABLE:
        return Decision(
            Outcome.UNAVAILABLE,
            Reason.RATE_LIMIT_UNAVAILABLE,
            "replay store unavailable",
            policy=decision.policy,
        )
    if verdict is ReplayVerdict.MISSING_JTI:
        reason, message = Reason.MISSING_CLAIM, "one-time token lacks 'jti'"
    else:
        reason, message = Reason.TOKEN_REPLAYED, "token has already been used"
    return Decision(
        Outcome.UNAUTHENTICATED,
        reason,
        message,
        policy=decision.policy,
        bearer_error="invalid_token",
    )


def _locked_out(retry_after: float) -> Decision:
    seconds = str(max(1, math.ceil(retry_after)))
    return Decision(
        Outcome.RATE_LIMITED,
        Reason.LOCKED_OUT,
        "too many failed authentication attempts from this address",
        extra_headers={"retry-after": seconds},
    )


async def _enforce_quota(
    check_quota: CheckQuotaDescriptors,
    limiter: RateLimiter,
    request: RequestAttributes,
    decision: Decision,
) -> Decision:
    descriptors = check_quota.descriptors(request, decision.identity)
    if not descriptors:
        return decision
    try:
        result: RateLimitResult | None = await limiter.check_descriptors(
            check_quota.domain, descriptors
        )
    except StoreUnavailable:
        result = None
    return _quota_decision(result, decision)


def _quota_decision(result: RateLimitResult | None, decision: Decision) -> Decision:
    """An allow turned into 429 when over a limit, or 503 when the store could not answer."""
    if result is None:
        # failure_mode "unavailable": fail closed with 503 (allow/deny modes never raise).
        return replace(
            decision,
            outcome=Outcome.UNAVAILABLE,
            reason=Reason.RATE_LIMIT_UNAVAILABLE,
            message="rate-limit store unavailable",
        )
    if not result.over_limit:
        return decision
    headers = rate_limit_headers(result)
    headers["retry-after"] = headers.get("x-ratelimit-reset", "1")
    return replace(
        decision,
        outcome=Outcome.RATE_LIMITED,
        reason=Reason.RATE_LIMITED,
        message="too many requests",
        extra_headers=headers,
        body=over_limit_body(result).decode(),
    )


def _describe_credential(
    compiled: CompiledConfig,
    request: RequestAttributes,
    authn: Identity | AuthnFailure | None,
) -> str:
    authenticator = compiled.authenticator
    token = authenticator.find_token(request.headers)
    if token is not None:
        where = (
            f"header {token.source.header}"
            if token.source.header
            else f"cookie {token.source.cookie}"
        )
        return f"bearer token from {where}"
    if authenticator.api_keys is not None and authenticator.api_keys.header in request.headers:
        return f"API key from header {authenticator.api_keys.header}"
    if isinstance(authn, Identity):
        return "mTLS peer identity"
    return "none"
