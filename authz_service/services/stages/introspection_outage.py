"""An opaque token whose issuer could not be asked (introspection endpoint down, slow, 5xx,
garbage) is answered 503 `introspection_unavailable`: the token may be good, so a 401
would tell the client to throw it away, and an allow is never an option. Not counted toward
the address's lockout: the caller did nothing wrong."""

from __future__ import annotations

from authz_service.decisions import AuthnFailure, Decision, Outcome, Reason
from authz_service.services.explanation import Explanation
from authz_service.services.pipeline import Evaluation, PureStage, StageInputs


class IntrospectionOutageStage(PureStage):
    name = "introspection_outage"

    @classmethod
    def build(cls, inputs: StageInputs) -> IntrospectionOutageStage | None:
        return cls() if inputs.compiled.loaded.config.introspection_providers else None

    def decide(self, evaluation: Evaluation, explanation: Explanation | None) -> Decision | None:
        authn = evaluation.authn
        if isinstance(authn, AuthnFailure) and authn.reason is Reason.INTROSPECTION_UNAVAILABLE:
            return Decision(Outcome.UNAVAILABLE, authn.reason, authn.message)
        return None
