"""Credentials -> who the caller is (an Identity), why not (an AuthnFailure), or None when
nothing was presented. Never a refusal on its own: RBAC decides what an unauthenticated
caller may do, and a failed credential is always a 401 there."""

from __future__ import annotations

from authz_service.authn.authenticator import Authenticator
from authz_service.decisions import AuthnFailure, Decision
from authz_service.services.explanation import Explanation
from authz_service.services.pipeline import Evaluation, Stage, StageInputs
from authz_service.telemetry import tracing


class AuthenticateStage(Stage):
    name = "authenticate"
    explains_after_refusal = True

    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    @classmethod
    def build(cls, inputs: StageInputs) -> AuthenticateStage:
        return cls(inputs.compiled.authenticator)

    async def enforce(self, evaluation: Evaluation) -> Decision | None:
        authenticator = self._authenticator
        with tracing.child_span("authz.authenticate") as span:
            if not span.is_recording():
                evaluation.authn = await authenticator.authenticate(evaluation.request)
                return None
            cache = authenticator.token_cache
            hits_before = cache.hits
            authn = await authenticator.authenticate(evaluation.request)
            span.set_attribute("authz.token_cache_hit", cache.hits > hits_before)
            if isinstance(authn, AuthnFailure):
                span.set_attribute("authz.reason", authn.reason.value)
        evaluation.authn = authn
        return None

    async def explain(self, evaluation: Evaluation, explanation: Explanation) -> Decision | None:
        request = evaluation.request
        evaluation.authn = await self._authenticator.authenticate(request)
        explanation.credential = self._authenticator.describe_credential(request, evaluation.authn)
        return None
