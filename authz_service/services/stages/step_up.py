"""Step-up (RFC 9470) and per-route sender constraint: after RBAC allowed a request, the rule
that allowed it may ask how the user authenticated (`step_up`: an `acr` among `acr_values`,
an `auth_time` at most `max_age_s` old) and for a DPoP-bound token (`require_dpop`). A token
falling short is 401 `insufficient_user_authentication` with `acr_values` / `max_age` in the
challenge, so the client knows to re-authenticate; an unbound token on a DPoP route is 401
`invalid_token`. Pure: no I/O, the same answer in both modes."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from authz_service.decisions import AuthMethod, Decision, Identity, Outcome, Reason
from authz_service.schema import StepUp
from authz_service.services.explanation import Explanation
from authz_service.services.pipeline import Evaluation, PureStage, StageInputs

RuleKey = tuple[str, str]  # (policy, rule)


def step_up_refusal(step_up: StepUp, identity: Identity, now: float) -> str:
    """Why the identity falls short of `step_up`, or "" when it is strong and fresh enough."""
    if step_up.acr_values and identity.acr not in step_up.acr_values:
        return "authentication context (acr) is not one the route accepts"
    if step_up.max_age_s is not None:
        if identity.auth_time is None:
            return "token lacks auth_time and the route limits authentication age"
        if now - identity.auth_time > step_up.max_age_s:
            return "authentication is older than the route accepts"
    return ""


def challenge(step_up: StepUp) -> dict[str, str]:
    params: dict[str, str] = {}
    if step_up.acr_values:
        params["acr_values"] = " ".join(step_up.acr_values)
    if step_up.max_age_s is not None:
        params["max_age"] = str(int(step_up.max_age_s))
    return params


class StepUpStage(PureStage):
    name = "step_up"

    def __init__(
        self,
        rules: Mapping[RuleKey, tuple[StepUp | None, bool]],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._rules = rules
        self._wall_clock = wall_clock

    @classmethod
    def build(cls, inputs: StageInputs) -> StepUpStage | None:
        rules = {
            (policy_name, rule.name): (rule.step_up, rule.require_dpop)
            for policy_name, policy in inputs.compiled.loaded.config.policies.items()
            for rule in policy.rules
            if rule.step_up is not None or rule.require_dpop
        }
        return cls(rules) if rules else None

    def decide(self, evaluation: Evaluation, explanation: Explanation | None) -> Decision | None:
        decision = evaluation.decision
        identity = decision.identity
        if not decision.allowed:
            return None
        entry = self._rules.get((decision.policy, decision.rule))
        if entry is None:
            return None
        step_up, require_dpop = entry
        if identity is None or identity.method is not AuthMethod.JWT:
            # An anonymous allow or another credential cannot show how a user authenticated.
            reason, message = Reason.AUTHENTICATION_REQUIRED, "route requires a user token"
            return self._refuse(decision, reason, message, "invalid_token", step_up)
        if require_dpop and not identity.bound_jkt:
            message = "route requires a DPoP-bound token"
            return self._refuse(decision, Reason.INVALID_TOKEN, message, "invalid_token", None)
        if step_up is not None:
            shortfall = step_up_refusal(step_up, identity, self._wall_clock())
            if shortfall:
                reason = Reason.INSUFFICIENT_USER_AUTHENTICATION
                return self._refuse(decision, reason, shortfall, reason.value, step_up)
        return None

    @staticmethod
    def _refuse(
        decision: Decision, reason: Reason, message: str, error: str, step_up: StepUp | None
    ) -> Decision:
        return Decision(
            Outcome.UNAUTHENTICATED,
            reason,
            message,
            rule=decision.rule,
            policy=decision.policy,
            identity=decision.identity,
            bearer_error=error,
            challenge=challenge(step_up) if step_up is not None else {},
        )
