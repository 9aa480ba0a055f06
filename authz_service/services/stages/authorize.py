"""RBAC: the identity (or its absence) and the request -> the decision. The policy's rules on
the request as sent and, for a path with `;parameters`, on the reading a Servlet container
makes too (authz/rbac.py); then on every method an override claims (authz/method_overrides.py).
Pure: no I/O."""

from __future__ import annotations

from authz_service.authz.method_overrides import MethodOverrides, decide_with_overrides
from authz_service.authz.rbac import PolicySet
from authz_service.decisions import Decision
from authz_service.services.explanation import Explanation
from authz_service.services.pipeline import Evaluation, PureStage, StageInputs
from authz_service.telemetry import tracing


class AuthorizeStage(PureStage):
    name = "authorize"
    explains_after_refusal = True

    def __init__(self, policies: PolicySet, overrides: MethodOverrides) -> None:
        self._policies = policies
        self._overrides = overrides

    @classmethod
    def build(cls, inputs: StageInputs) -> AuthorizeStage:
        return cls(inputs.compiled.policies, inputs.compiled.method_overrides)

    def decide(self, evaluation: Evaluation, explanation: Explanation | None) -> Decision | None:
        request, authn, policies = evaluation.request, evaluation.authn, self._policies
        # RBAC on the request as sent; explain walks every rule into its trace.
        if explanation is None:
            with tracing.child_span("authz.rbac"):
                decision = policies.authorize(request, authn)
        else:
            decision = policies.authorize(request, authn, explanation.trace)
        if decision.allowed:
            # Then on every method the request's overrides claim.
            decision = decide_with_overrides(
                self._overrides,
                request,
                decision,
                lambda overridden: policies.authorize(overridden, authn),
            )
        evaluation.decision = decision
        return None if decision.allowed else decision
