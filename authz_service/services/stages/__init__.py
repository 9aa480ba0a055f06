"""The stages of a decision, in the order they run (services/pipeline.py says how).

A new stage is one class in a module here and one line in `STAGES`, where it belongs in the
order; its `build` says when a config needs it.
"""

from __future__ import annotations

from authz_service.services.pipeline import Pipeline, Stage, StageInputs
from authz_service.services.stages.authenticate import AuthenticateStage
from authz_service.services.stages.authorize import AuthorizeStage
from authz_service.services.stages.cert_binding import CertificateBindingStage
from authz_service.services.stages.dpop import DpopStage
from authz_service.services.stages.introspection_outage import IntrospectionOutageStage
from authz_service.services.stages.lockout import FailedAttemptStage, LockoutStage
from authz_service.services.stages.quota import QuotaStage
from authz_service.services.stages.replay import ReplayStage
from authz_service.services.stages.revocation import RevocationStage
from authz_service.services.stages.step_up import StepUpStage

STAGES: tuple[type[Stage], ...] = (
    LockoutStage,  # an address locked out for failed authentications: refused before any work
    AuthenticateStage,  # credentials -> Identity, AuthnFailure, or None (nothing presented)
    IntrospectionOutageStage,  # an opaque token's issuer could not be asked: 503
    RevocationStage,  # a revoked token's identity becomes a failure
    DpopStage,  # a DPoP-bound token needs a fresh proof by its key (RFC 9449)
    CertificateBindingStage,  # a certificate-bound token needs its client cert (RFC 8705)
    FailedAttemptStage,  # a failed authentication counts toward the address's lockout
    AuthorizeStage,  # RBAC (with the ;params reading) and method overrides -> the decision
    StepUpStage,  # the allowing rule's step-up (acr, auth age) and DPoP-only requirements
    ReplayStage,  # an allowed use of a one-time token uses it up
    QuotaStage,  # quota inside Check: only allowed requests are charged
)


def build_pipeline(inputs: StageInputs) -> Pipeline:
    """The stages this config needs, in order."""
    return Pipeline([stage for kind in STAGES if (stage := kind.build(inputs)) is not None])


__all__ = ["STAGES", "build_pipeline"]
