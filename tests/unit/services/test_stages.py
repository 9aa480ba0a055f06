"""Each stage of the decision pipeline, in both modes: enforce (Check) may charge, count and
use up; explain gives the same answer with no side effect, and notes what it found."""

from __future__ import annotations

from typing import Any

import pytest

from authz_service.authn.replay import ReplayGuard
from authz_service.authn.revocation import RevocationList
from authz_service.decisions import (
    AuthMethod,
    AuthnFailure,
    Decision,
    Identity,
    Outcome,
    Reason,
)
from authz_service.schema import ReplayProtection
from authz_service.services.explanation import UNDECIDED, Explanation
from authz_service.services.pipeline import PureStage, StageInputs
from authz_service.services.stages.authenticate import AuthenticateStage
from authz_service.services.stages.authorize import AuthorizeStage
from authz_service.services.stages.lockout import FailedAttemptStage, LockoutStage
from authz_service.services.stages.quota import QuotaStage
from authz_service.services.stages.replay import ReplayStage
from authz_service.services.stages.revocation import RevocationStage
from tests.unit.services.conftest import (
    BAD_KEY,
    CLIENT,
    QUOTA_LIMIT,
    READER,
    Compiled,
    RecordingStore,
    document,
    evaluation,
    request,
)

# The lockout counts in one-minute windows: never across a minute boundary.
pytestmark = pytest.mark.usefixtures("fresh_minute")


def build(stage: type, compiled: Compiled, revocations: RevocationList | None = None) -> object:
    built = stage.build(StageInputs(compiled.config, revocations or RevocationList()))
    assert built is not None, stage.__name__
    return built


def allowed(identity: Identity = READER) -> Decision:
    return Decision(Outcome.ALLOW, Reason.ALLOWED, "requirements met", "api", "main", identity)


# -- lockout ---------------------------------------------------------------------------------


async def test_lockout_refuses_a_locked_out_address_in_both_modes(compiled: Compiled) -> None:
    assert compiled.config.limiter is not None
    for _ in range(2):  # max_failures
        await compiled.config.limiter.record_auth_failure(CLIENT)
    stage = build(LockoutStage, compiled)
    assert isinstance(stage, LockoutStage)

    enforced = await stage.enforce(evaluation(compiled, request()))
    explanation = Explanation()
    explained = await stage.explain(evaluation(compiled, request()), explanation)

    assert enforced is not None and enforced.reason is Reason.LOCKED_OUT
    assert enforced.outcome is Outcome.RATE_LIMITED
    assert 1 <= int(enforced.extra_headers["retry-after"]) <= 60
    assert explained == enforced
    assert explanation.lockout is not None and explanation.lockout.locked


async def test_lockout_lets_an_address_in_good_standing_through(compiled: Compiled) -> None:
    stage = build(LockoutStage, compiled)
    assert isinstance(stage, LockoutStage)
    explanation = Explanation()

    assert await stage.enforce(evaluation(compiled, request())) is None
    assert await stage.explain(evaluation(compiled, request()), explanation) is None
    assert explanation.lockout is not None and explanation.lockout.failures_left == 2
    assert compiled.store.charged == 0  # looking counts nothing


async def test_lockout_without_a_source_address_asks_the_store_nothing(compiled: Compiled) -> None:
    stage = build(LockoutStage, compiled)
    assert isinstance(stage, LockoutStage)
    explanation = Explanation()
    sent = request(source="")

    assert await stage.enforce(evaluation(compiled, sent)) is None
    assert await stage.explain(evaluation(compiled, sent), explanation) is None
    assert compiled.store.asked == []
    assert explanation.lockout is None


async def test_lockout_stages_are_absent_when_brute_force_is_off(compile_document: Any) -> None:
    off = compile_document(document(brute_force=False))
    inputs = StageInputs(off.config, RevocationList())
    assert LockoutStage.build(inputs) is None
    assert FailedAttemptStage.build(inputs) is None


async def test_a_failed_authentication_counts_toward_the_lockout_only_when_enforced(
    compiled: Compiled,
) -> None:
    stage = build(FailedAttemptStage, compiled)
    assert isinstance(stage, FailedAttemptStage)
    failed = evaluation(compiled, request(credential="wrong"))
    failed.authn = BAD_KEY

    assert stage.applies_to(failed)
    assert await stage.explain(failed, Explanation()) is None
    assert compiled.store.charged == 0
    assert await stage.enforce(failed) is None  # the answer is the 401 RBAC gives
    assert compiled.store.charged == 1


def test_a_verified_identity_or_no_address_counts_no_failure(compiled: Compiled) -> None:
    stage = build(FailedAttemptStage, compiled)
    assert isinstance(stage, FailedAttemptStage)
    verified = evaluation(compiled, request())
    verified.authn = READER
    anonymous_failure = evaluation(compiled, request(credential="wrong", source=""))
    anonymous_failure.authn = BAD_KEY

    assert not stage.applies_to(verified)
    assert not stage.applies_to(anonymous_failure)


# -- authenticate, revocation --------------------------------------------------------------


async def test_authenticate_sets_who_the_caller_is_in_both_modes(compiled: Compiled) -> None:
    stage = build(AuthenticateStage, compiled)
    assert isinstance(stage, AuthenticateStage)
    enforced = evaluation(compiled, request())
    explained = evaluation(compiled, request())
    explanation = Explanation()

    assert await stage.enforce(enforced) is None
    assert await stage.explain(explained, explanation) is None
    assert enforced.authn == explained.authn == READER
    assert explanation.credential == "test credential from header x-test-credential"


async def test_authenticate_never_refuses_a_bad_or_missing_credential(compiled: Compiled) -> None:
    stage = build(AuthenticateStage, compiled)
    assert isinstance(stage, AuthenticateStage)
    bad = evaluation(compiled, request(credential="wrong"))
    missing = evaluation(compiled, request(credential=None))

    assert await stage.enforce(bad) is None and bad.authn == BAD_KEY
    assert await stage.enforce(missing) is None and missing.authn is None


@pytest.mark.parametrize("explaining", [False, True])
def test_a_revoked_identity_becomes_a_token_revoked_failure(
    compiled: Compiled, explaining: bool
) -> None:
    revocations = RevocationList()
    token = Identity("alice", AuthMethod.JWT, issuer="https://idp", token_id="jti-1")
    revocations.add_jti("jti-1", expires_at=4_000_000_000)
    stage = build(RevocationStage, compiled, revocations)
    assert isinstance(stage, PureStage)
    revoked = evaluation(compiled, request())
    revoked.authn = token
    kept = evaluation(compiled, request())
    kept.authn = READER

    explanation = Explanation() if explaining else None
    assert stage.decide(revoked, explanation) is None
    assert stage.decide(kept, explanation) is None
    assert isinstance(revoked.authn, AuthnFailure)
    assert revoked.authn.reason is Reason.TOKEN_REVOKED
    assert kept.authn is READER


# -- authorize ---------------------------------------------------------------------------------


@pytest.mark.parametrize("explaining", [False, True])
def test_authorize_sets_the_decision_and_ends_the_pipeline_only_on_a_refusal(
    compiled: Compiled, explaining: bool
) -> None:
    stage = build(AuthorizeStage, compiled)
    assert isinstance(stage, AuthorizeStage)
    allowed_request = evaluation(compiled, request("/reports/q1"))
    allowed_request.authn = READER
    refused_request = evaluation(compiled, request("/admin/users"))
    refused_request.authn = READER

    assert stage.decide(allowed_request, Explanation() if explaining else None) is None
    refusal = stage.decide(refused_request, Explanation() if explaining else None)

    assert (allowed_request.decision.reason, allowed_request.decision.rule) == (
        Reason.ALLOWED,
        "reports",
    )
    assert refusal is refused_request.decision
    assert (refusal.reason, refusal.rule) == (Reason.MISSING_ROLE, "admin")


def test_authorize_explains_every_rule_it_walked(compiled: Compiled) -> None:
    stage = build(AuthorizeStage, compiled)
    assert isinstance(stage, AuthorizeStage)
    walked = evaluation(compiled, request("/api/orders"))
    walked.authn = READER
    explanation = Explanation()

    stage.decide(walked, explanation)

    assert explanation.trace.policy == "main"
    assert explanation.trace.path == "/api/orders"
    assert [(r.rule, r.matched, r.decided) for r in explanation.trace.rules] == [
        ("docs", False, False),
        ("admin", False, False),
        ("reports", False, False),
        ("api", True, True),
    ]


@pytest.mark.parametrize("explaining", [False, True])
def test_authorize_rechecks_the_method_an_override_claims(
    compiled: Compiled, explaining: bool
) -> None:
    stage = build(AuthorizeStage, compiled)
    assert isinstance(stage, AuthorizeStage)
    sent = request("/reports/q1", headers={"x-http-method-override": "DELETE"})
    overridden = evaluation(compiled, sent)
    overridden.authn = READER

    refusal = stage.decide(overridden, Explanation() if explaining else None)

    assert refusal is not None and refusal.reason is Reason.NO_MATCHING_RULE
    assert refusal.message.startswith("method override to DELETE")


@pytest.mark.parametrize("explaining", [False, True])
def test_authorize_allows_a_parameter_path_only_if_the_servlet_reading_is_allowed(
    compiled: Compiled, explaining: bool
) -> None:
    stage = build(AuthorizeStage, compiled)
    assert isinstance(stage, AuthorizeStage)
    # As sent, `/admin;x/users` is under no rule's prefix but the open reads; a Servlet
    # container reads it as /admin/users.
    anonymous = evaluation(compiled, request("/admin;x/users", credential=None))

    refusal = stage.decide(anonymous, Explanation() if explaining else None)

    assert refusal is not None
    assert (refusal.reason, refusal.rule) == (Reason.AUTHENTICATION_REQUIRED, "admin")


# -- replay ------------------------------------------------------------------------------------


class Provider:
    issuer = "https://idp.example"
    leeway_s = 0.0
    replay_protection = ReplayProtection(enabled=True)


def one_time(jti: str = "once") -> Identity:
    return Identity(
        "alice", AuthMethod.JWT, issuer=Provider.issuer, token_id=jti, expires_at=4_000_000_000
    )


async def test_replay_uses_a_token_up_when_enforced_and_only_looks_when_explained(
    compiled: Compiled,
) -> None:
    store = RecordingStore()
    guard = ReplayGuard.for_providers([Provider()], store)
    assert guard is not None
    stage = ReplayStage(guard)
    use = evaluation(compiled, request())
    use.decision = allowed(one_time())

    assert stage.applies_to(use)
    assert await stage.explain(use, Explanation()) is None
    assert await stage.explain(use, Explanation()) is None  # looking used nothing
    assert await stage.enforce(use) is None
    replayed = await stage.enforce(use)
    explained = await stage.explain(use, Explanation())

    assert replayed is not None and replayed.reason is Reason.TOKEN_REPLAYED
    assert explained == replayed
    assert store.charged == 2  # the two enforced uses; the looks were hits of 0


def test_replay_has_nothing_to_do_for_a_refusal_or_an_anonymous_allow(compiled: Compiled) -> None:
    guard = ReplayGuard.for_providers([Provider()], RecordingStore())
    assert guard is not None
    stage = ReplayStage(guard)
    refused = evaluation(compiled, request())
    refused.decision = Decision(Outcome.FORBIDDEN, Reason.MISSING_ROLE)
    anonymous = evaluation(compiled, request(credential=None))
    anonymous.decision = Decision(Outcome.ALLOW, Reason.ANONYMOUS_ALLOWED)

    assert not stage.applies_to(refused)
    assert not stage.applies_to(anonymous)


def test_no_replay_stage_without_a_provider_that_asks_for_one(compiled: Compiled) -> None:
    assert ReplayStage.build(StageInputs(compiled.config, RevocationList())) is None


# -- quota -------------------------------------------------------------------------------------


async def test_quota_charges_when_enforced_and_previews_when_explained(compiled: Compiled) -> None:
    stage = build(QuotaStage, compiled)
    assert isinstance(stage, QuotaStage)
    call = evaluation(compiled, request())
    call.decision = allowed()

    for _ in range(3):
        explanation = Explanation()
        assert await stage.explain(call, explanation) is None  # charges nothing
    assert compiled.store.charged == 0
    assert explanation.quota is not None
    assert explanation.quota.domain == "unit"
    assert explanation.quota.descriptors == ((("user", "reader"),),)
    for _ in range(QUOTA_LIMIT):
        assert await stage.enforce(call) is None
    refused = await stage.enforce(call)
    previewed = await stage.explain(call, Explanation())

    assert refused is not None
    assert (refused.outcome, refused.reason) == (Outcome.RATE_LIMITED, Reason.RATE_LIMITED)
    assert int(refused.extra_headers["retry-after"]) >= 1
    assert previewed is not None and previewed.reason is Reason.RATE_LIMITED
    assert (refused.rule, refused.identity) == ("api", READER)  # still the allow's rule


@pytest.mark.parametrize("explaining", [False, True])
async def test_quota_with_the_store_down_fails_closed(compiled: Compiled, explaining: bool) -> None:
    stage = build(QuotaStage, compiled)
    assert isinstance(stage, QuotaStage)
    compiled.store.down = True
    call = evaluation(compiled, request())
    call.decision = allowed()
    explanation = Explanation()

    refused = await stage.explain(call, explanation) if explaining else await stage.enforce(call)

    assert refused is not None
    assert (refused.outcome, refused.reason) == (Outcome.UNAVAILABLE, Reason.RATE_LIMIT_UNAVAILABLE)
    if explaining:
        assert explanation.quota is not None and explanation.quota.result is None


def test_a_refused_request_is_never_charged(compiled: Compiled) -> None:
    stage = build(QuotaStage, compiled)
    assert isinstance(stage, QuotaStage)
    refused = evaluation(compiled, request())
    refused.decision = Decision(Outcome.FORBIDDEN, Reason.MISSING_ROLE)
    undecided = evaluation(compiled, request())

    assert not stage.applies_to(refused)
    assert undecided.decision is UNDECIDED and not stage.applies_to(undecided)
