"""Certificate-bound tokens (RFC 8705): a token with `cnf.x5t#S256` is accepted only from the
client whose mTLS certificate has that thumbprint; from any other client (or one without a
certificate) its identity becomes a 401 `certificate_mismatch` failure, counted toward the
lockout. The thumbprint comes from the transport (authn/cert_binding.py says from where and
when it is trusted). Pure: an in-process comparison."""

from __future__ import annotations

import hmac

from authz_service.decisions import AuthnFailure, Decision, Identity, Reason
from authz_service.services.explanation import BindingCheck, Explanation
from authz_service.services.pipeline import Evaluation, PureStage, StageInputs

BINDING = "certificate (x5t#S256)"
_NO_CERTIFICATE = AuthnFailure(
    Reason.CERTIFICATE_MISMATCH, "certificate-bound token without a client certificate"
)
_OTHER_CERTIFICATE = AuthnFailure(
    Reason.CERTIFICATE_MISMATCH, "client certificate is not the one the token is bound to"
)


class CertificateBindingStage(PureStage):
    name = "certificate_binding"
    explains_after_refusal = True

    @classmethod
    def build(cls, inputs: StageInputs) -> CertificateBindingStage | None:
        # JWT providers' tokens, and opaque tokens whose introspection answer has a `cnf`.
        config = inputs.compiled.loaded.config
        return cls() if config.jwt_providers or config.introspection_providers else None

    def decide(self, evaluation: Evaluation, explanation: Explanation | None) -> Decision | None:
        identity = evaluation.authn
        if not isinstance(identity, Identity) or not identity.bound_x5t:
            return None
        presented = evaluation.request.client_cert_thumbprint
        if not presented:
            evaluation.authn = _NO_CERTIFICATE
        elif not hmac.compare_digest(presented.encode(), identity.bound_x5t.encode()):
            evaluation.authn = _OTHER_CERTIFICATE
        if explanation is not None:
            found = evaluation.authn
            explanation.bindings.append(
                BindingCheck(BINDING, False, found.message, found.reason.value)
                if isinstance(found, AuthnFailure)
                else BindingCheck(BINDING, True, "client certificate matches")
            )
        return None
