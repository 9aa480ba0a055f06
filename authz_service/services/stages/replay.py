"""One-time tokens: an allowed use of a token whose provider asks for replay protection uses
it up; a second use is refused (401 token_replayed). After RBAC, so only a use that would be
allowed consumes the token. Explain looks without using it (authn/replay.py)."""

from __future__ import annotations

from authz_service.authn.replay import ReplayGuard, ReplayVerdict
from authz_service.decisions import Decision, Outcome, Reason
from authz_service.services.explanation import Explanation
from authz_service.services.pipeline import Evaluation, Stage, StageInputs


def replay_refusal(verdict: ReplayVerdict, decision: Decision) -> Decision | None:
    """The refusal for `verdict`, None when the use may proceed."""
    if verdict.allowed:
        return None
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


class ReplayStage(Stage):
    name = "replay"

    def __init__(self, guard: ReplayGuard) -> None:
        self._guard = guard

    @classmethod
    def build(cls, inputs: StageInputs) -> ReplayStage | None:
        guard = inputs.compiled.replay
        return cls(guard) if guard is not None else None

    def applies_to(self, evaluation: Evaluation) -> bool:
        decision = evaluation.decision
        return decision.allowed and decision.identity is not None

    async def enforce(self, evaluation: Evaluation) -> Decision | None:
        decision = evaluation.decision
        if decision.identity is None:  # see applies_to
            return None
        return replay_refusal(await self._guard.check(decision.identity), decision)

    async def explain(self, evaluation: Evaluation, explanation: Explanation) -> Decision | None:
        decision = evaluation.decision
        if decision.identity is None:  # see applies_to
            return None
        return replay_refusal(await self._guard.peek(decision.identity), decision)
