"""Step-up (RFC 9470) and DPoP-only routes: after RBAC allows, the allowing rule may ask for
a stronger or fresher authentication, or a DPoP-bound token; the same answer in both modes."""

from __future__ import annotations

from typing import Any, cast

import pytest

from authz_service.decisions import (
    AuthMethod,
    Decision,
    Identity,
    Outcome,
    Reason,
    RequestAttributes,
)
from authz_service.schema import StepUp
from authz_service.services.explanation import Explanation
from authz_service.services.pipeline import Evaluation
from authz_service.services.stages.step_up import StepUpStage

NOW = 1_800_000_000.0
MFA = StepUp(acr_values=["urn:mfa", "urn:hwk"], max_age_s=300)


def stage(step_up: StepUp | None = MFA, require_dpop: bool = False) -> StepUpStage:
    return StepUpStage({("default", "payments"): (step_up, require_dpop)}, lambda: NOW)


def allowed(identity: Identity | None, rule: str = "payments") -> Evaluation:
    found = Evaluation(RequestAttributes("POST", "api", "/pay"), cast(Any, None))
    found.decision = Decision(
        Outcome.ALLOW, Reason.ALLOWED, rule=rule, policy="default", identity=identity
    )
    return found


def user(acr: str = "urn:mfa", auth_age: float | None = 10, jkt: str = "") -> Identity:
    auth_time = None if auth_age is None else NOW - auth_age
    return Identity("alice", AuthMethod.JWT, acr=acr, auth_time=auth_time, bound_jkt=jkt)


@pytest.mark.parametrize("explaining", [False, True])
def test_a_strong_and_fresh_authentication_passes(explaining: bool) -> None:
    assert stage().decide(allowed(user()), Explanation() if explaining else None) is None


@pytest.mark.parametrize(
    "identity",
    [user(acr="urn:pwd"), user(auth_age=301), user(auth_age=None)],
    ids=["weak-acr", "too-old", "no-auth_time"],
)
def test_a_weak_or_stale_authentication_asks_the_client_to_step_up(identity: Identity) -> None:
    refusal = stage().decide(allowed(identity), None)
    assert refusal is not None
    assert refusal.outcome is Outcome.UNAUTHENTICATED
    assert refusal.reason is Reason.INSUFFICIENT_USER_AUTHENTICATION
    assert refusal.bearer_error == "insufficient_user_authentication"
    assert refusal.challenge == {"acr_values": "urn:mfa urn:hwk", "max_age": "300"}
    assert stage().decide(allowed(identity), Explanation()) == refusal


def test_rules_without_step_up_and_refusals_are_left_alone() -> None:
    weak = user(acr="urn:pwd")
    assert stage().decide(allowed(weak, rule="other"), None) is None
    refused = allowed(weak)
    refused.decision = Decision(Outcome.FORBIDDEN, Reason.MISSING_ROLE, policy="default")
    assert stage().decide(refused, None) is None


def test_a_dpop_only_route_refuses_an_unbound_token_and_takes_a_bound_one() -> None:
    dpop_only = stage(step_up=None, require_dpop=True)
    refusal = dpop_only.decide(allowed(user()), None)
    assert refusal is not None
    assert (refusal.reason, refusal.bearer_error) == (Reason.INVALID_TOKEN, "invalid_token")
    assert dpop_only.decide(allowed(user(jkt="thumbprint")), None) is None


def test_an_api_key_cannot_satisfy_a_step_up_rule() -> None:
    service = Identity("batch", AuthMethod.API_KEY)
    refusal = stage().decide(allowed(service), None)
    assert refusal is not None
    assert refusal.reason is Reason.AUTHENTICATION_REQUIRED


@pytest.mark.parametrize(
    "rule",
    [
        {"name": "r", "allow": "anonymous", "step_up": {"acr_values": ["urn:mfa"]}},
        {"name": "r", "deny": True, "require_dpop": True},
    ],
)
def test_step_up_on_a_rule_that_asks_for_no_caller_is_a_config_error(rule: dict[str, Any]) -> None:
    from pydantic import ValidationError

    from authz_service.schema import Rule

    with pytest.raises(ValidationError, match="need an allow that is not 'anonymous'"):
        Rule.model_validate(rule)
