"""Brute-force lockout, at its two points in the pipeline: an address locked out for failed
authentications is refused before any work (`LockoutStage`), and each failed authentication
counts toward its lockout (`FailedAttemptStage`, after authentication and revocation).
Explain reads the lockout and counts nothing."""

from __future__ import annotations

import math

from authz_service.decisions import AuthnFailure, Decision, Outcome, Reason
from authz_service.ratelimit.limiter import RateLimiter
from authz_service.services.explanation import Explanation
from authz_service.services.pipeline import Evaluation, Stage, StageInputs


def _brute_force_limiter(inputs: StageInputs) -> RateLimiter | None:
    limiter = inputs.compiled.limiter
    return limiter if limiter is not None and limiter.brute_force_enabled else None


def locked_out(retry_after: float) -> Decision:
    seconds = str(max(1, math.ceil(retry_after)))
    return Decision(
        Outcome.RATE_LIMITED,
        Reason.LOCKED_OUT,
        "too many failed authentication attempts from this address",
        extra_headers={"retry-after": seconds},
    )


class LockoutStage(Stage):
    name = "lockout"

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    @classmethod
    def build(cls, inputs: StageInputs) -> LockoutStage | None:
        limiter = _brute_force_limiter(inputs)
        return cls(limiter) if limiter is not None else None

    # No `applies_to`: nearly every request has an address, and asking would cost a call.
    async def enforce(self, evaluation: Evaluation) -> Decision | None:
        address = evaluation.request.source_address
        if not address:  # nothing to lock out
            return None
        state = await self._limiter.lockout_state(address)
        return locked_out(state.retry_after) if state.locked else None

    async def explain(self, evaluation: Evaluation, explanation: Explanation) -> Decision | None:
        address = evaluation.request.source_address
        if not address:
            return None
        state = await self._limiter.lockout_state(address)
        explanation.lockout = state
        return locked_out(state.retry_after) if state.locked else None


class FailedAttemptStage(Stage):
    name = "failed_attempts"

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    @classmethod
    def build(cls, inputs: StageInputs) -> FailedAttemptStage | None:
        limiter = _brute_force_limiter(inputs)
        return cls(limiter) if limiter is not None else None

    def applies_to(self, evaluation: Evaluation) -> bool:
        return isinstance(evaluation.authn, AuthnFailure) and bool(
            evaluation.request.source_address
        )

    async def enforce(self, evaluation: Evaluation) -> Decision | None:
        await self._limiter.record_auth_failure(evaluation.request.source_address)
        return None  # this request's answer is its 401 already

    async def explain(self, evaluation: Evaluation, explanation: Explanation) -> Decision | None:
        return None  # explain counts no failure
