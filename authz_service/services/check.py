"""The Check use case: authenticate, authorize, answer. Transport-agnostic.

Any unexpected error becomes a deny (fail closed): an authorization service that allows on
its own bugs is worse than none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from authz_service.authz.rbac import Trace
from authz_service.model import AuthnFailure, Decision, Identity, Outcome, Reason, RequestAttributes
from authz_service.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Explanation:
    decision: Decision
    trace: Trace
    credential: str  # which credential was found, never its value


class CheckService:
    def __init__(self, runtime: Callable[[], Runtime]):
        self._runtime = runtime

    def runtime(self) -> Runtime:
        return self._runtime()

    async def check(self, request: RequestAttributes) -> tuple[Decision, Runtime]:
        runtime = self._runtime()
        try:
            authn = await runtime.authenticator.authenticate(request)
            return runtime.policies.authorize(request, authn), runtime
        except Exception:
            log.exception("check failed; denying")
            return Decision(Outcome.UNAVAILABLE, Reason.INTERNAL_ERROR, "internal error"), runtime

    async def explain(self, request: RequestAttributes) -> Explanation:
        runtime = self._runtime()
        trace = Trace()
        authn = await runtime.authenticator.authenticate(request)
        decision = runtime.policies.authorize(request, authn, trace)
        return Explanation(decision, trace, _describe_credential(runtime, request, authn))


def _describe_credential(
    runtime: Runtime, request: RequestAttributes, authn: Identity | AuthnFailure | None
) -> str:
    authenticator = runtime.authenticator
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
