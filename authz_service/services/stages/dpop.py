"""DPoP (RFC 9449): a token bound to a key (`cnf.jkt`) needs a proof signed by that key for
this request, presented with the `DPoP` authorization scheme; a bound token sent as `Bearer`,
a missing, invalid or replayed proof make the identity an authentication failure (401),
counted toward the lockout like any other; the replay store down answers 503 (fail closed)
unless `dpop.failure_mode: allow`. A provider with `dpop.required` also refuses its
unbound tokens; one with `dpop.nonce: required` answers a proof without its current server
nonce 401 `use_dpop_nonce` with the nonce in `DPoP-Nonce`. After revocation, before RBAC.
Explain verifies the proof and looks at the replay store without recording the `jti`
(authn/dpop.py)."""

from __future__ import annotations

import time

from authz_service.authn.dpop import DpopError, DpopVerifier
from authz_service.decisions import (
    AuthnFailure,
    Decision,
    Identity,
    Outcome,
    Reason,
    RequestAttributes,
)
from authz_service.ratelimit.store import StoreUnavailable
from authz_service.services.explanation import BindingCheck, Explanation
from authz_service.services.pipeline import Evaluation, Stage, StageInputs

SCHEME = "dpop "
NONCE_HEADER = "dpop-nonce"
BINDING = "dpop"


def request_url(request: RequestAttributes) -> str:
    """The URL as the client sent it: the scheme Envoy saw (`:scheme`, else the forwarded
    proto, else https), the host and the path without its query."""
    headers = request.headers
    scheme = headers.get(":scheme") or headers.get("x-forwarded-proto", "https").split(",")[0]
    return f"{scheme.strip().lower()}://{request.host}{request.path.split('?', 1)[0]}"


def _failure(reason: Reason, message: str, error: str = "invalid_dpop_proof") -> AuthnFailure:
    return AuthnFailure(reason, message, bearer_error=error)


class DpopStage(Stage):
    name = "dpop"
    explains_after_refusal = True

    def __init__(self, verifier: DpopVerifier) -> None:
        self._verifier = verifier

    @classmethod
    def build(cls, inputs: StageInputs) -> DpopStage | None:
        verifier = inputs.compiled.dpop
        return cls(verifier) if verifier is not None else None

    def applies_to(self, evaluation: Evaluation) -> bool:
        authn = evaluation.authn
        return isinstance(authn, Identity) and bool(
            authn.bound_jkt
            or evaluation.request.headers.get("authorization", "").lower().startswith(SCHEME)
            or ((s := self._verifier.settings_for(authn.issuer)) is not None and s.required)
        )

    async def enforce(self, evaluation: Evaluation) -> Decision | None:
        return await self._check(evaluation, record=True)

    async def explain(self, evaluation: Evaluation, explanation: Explanation) -> Decision | None:
        answer = await self._check(evaluation, record=False)
        authn = evaluation.authn
        if answer is not None:
            refused = BindingCheck(BINDING, False, answer.message, answer.reason.value)
            explanation.bindings.append(refused)
        elif isinstance(authn, AuthnFailure):
            refused = BindingCheck(BINDING, False, authn.message, authn.reason.value)
            explanation.bindings.append(refused)
        elif isinstance(authn, Identity) and authn.bound_jkt:
            explanation.bindings.append(BindingCheck(BINDING, True, "proof verified, jti unused"))
        return answer

    async def _check(self, evaluation: Evaluation, *, record: bool) -> Decision | None:
        """Replaces a refused identity by its failure; answers only when the store is down."""
        identity = evaluation.authn
        if not isinstance(identity, Identity):  # see applies_to
            return None
        settings = self._verifier.settings_for(identity.issuer)
        request = evaluation.request
        authorization = request.headers.get("authorization", "")
        as_dpop = authorization[: len(SCHEME)].lower() == SCHEME
        if settings is None:
            if as_dpop:  # the DPoP scheme with a token no provider binds: not a DPoP token
                evaluation.authn = _failure(
                    Reason.INVALID_TOKEN, "token is not DPoP-bound", "invalid_token"
                )
            return None
        if not identity.bound_jkt:
            if settings.required or as_dpop:
                message = (
                    "provider requires DPoP-bound tokens"
                    if settings.required
                    else "DPoP scheme with a token that is not DPoP-bound"
                )
                evaluation.authn = _failure(Reason.INVALID_TOKEN, message, "invalid_token")
            return None
        if not as_dpop:
            evaluation.authn = _failure(
                Reason.INVALID_TOKEN, "DPoP-bound token presented as Bearer", "invalid_token"
            )
            return None
        proof = request.headers.get("dpop", "")
        if not proof or "," in proof:  # exactly one DPoP header (RFC 9449 4.3)
            evaluation.authn = _failure(Reason.DPOP_PROOF_MISSING, "DPoP proof missing")
            return None
        now = time.time()
        try:
            verified = self._verifier.verify(
                proof.strip(),
                settings=settings,
                method=request.method,
                url=request_url(request),
                access_token=authorization[len(SCHEME) :].strip(),
                jkt=identity.bound_jkt,
                now=now,
            )
        except DpopError as error:
            evaluation.authn = _failure(Reason.INVALID_DPOP_PROOF, str(error))
            return None
        nonces = self._verifier.nonces_for(identity.issuer)
        if nonces is not None and not nonces.accepts(verified.nonce, now):
            # Not a failed login (no lockout count, the jti is not used up): the client signs
            # a new proof with the nonce handed out here and retries (RFC 9449 8).
            return Decision(
                Outcome.UNAUTHENTICATED,
                Reason.USE_DPOP_NONCE,
                "DPoP proof needs the server's current nonce",
                bearer_error="use_dpop_nonce",
                extra_headers={NONCE_HEADER: nonces.current(now)},
            )
        try:
            fresh = await self._verifier.first_use(verified, settings, now, record=record)
        except StoreUnavailable:
            if settings.failure_mode == "allow":
                return None
            return Decision(
                Outcome.UNAVAILABLE, Reason.RATE_LIMIT_UNAVAILABLE, "DPoP replay store unavailable"
            )
        if not fresh:
            evaluation.authn = _failure(Reason.DPOP_PROOF_REPLAYED, "DPoP proof already used")
        return None
