"""A revoked token's identity becomes an authentication failure (401 token_revoked), counted
toward the address's lockout like any other. An in-process lookup: no I/O."""

from __future__ import annotations

from authz_service.authn.revocation import RevocationList
from authz_service.decisions import AuthnFailure, Decision, Identity, Reason
from authz_service.services.explanation import Explanation
from authz_service.services.pipeline import Evaluation, PureStage, StageInputs

_REVOKED = AuthnFailure(Reason.TOKEN_REVOKED, "token has been revoked")


class RevocationStage(PureStage):
    name = "revocation"
    explains_after_refusal = True

    def __init__(self, revocations: RevocationList) -> None:
        self._revocations = revocations

    @classmethod
    def build(cls, inputs: StageInputs) -> RevocationStage:
        # Always present: revocations arrive at run time (admin API, other replicas).
        return cls(inputs.revocations)

    def decide(self, evaluation: Evaluation, explanation: Explanation | None) -> Decision | None:
        authn = evaluation.authn
        if isinstance(authn, Identity) and self._revocations.is_revoked(authn):
            evaluation.authn = _REVOKED
        return None
