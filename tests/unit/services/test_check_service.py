"""The Check use case over the pipeline: which stages a config gets and in what order, the
two modes running the same stages, failing closed, and a reload swapping the pipeline."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from authz_service.authn.revocation import RevocationList
from authz_service.decisions import Outcome, Reason, RequestAttributes
from authz_service.services.check import CheckService
from authz_service.services.explanation import UNDECIDED
from authz_service.services.pipeline import Evaluation, PureStage, StageInputs
from authz_service.services.stages import STAGES, build_pipeline
from tests.unit.services.conftest import QUOTA_LIMIT, Compiled, document, request

pytestmark = pytest.mark.usefixtures("fresh_minute")


def test_the_stages_run_in_the_documented_order() -> None:
    assert [stage.name for stage in STAGES] == [
        "lockout",
        "authenticate",
        "introspection_outage",
        "revocation",
        "dpop",
        "certificate_binding",
        "failed_attempts",
        "authorize",
        "step_up",
        "replay",
        "quota",
    ]


def test_a_config_gets_only_the_stages_it_needs(compile_document: Any) -> None:
    full = build_pipeline(StageInputs(compile_document(document()).config, RevocationList()))
    bare = compile_document(document(brute_force=False, quota=False))
    minimal = build_pipeline(StageInputs(bare.config, RevocationList()))

    assert [s.name for s in full.stages] == [
        "lockout",
        "authenticate",
        "revocation",
        "failed_attempts",
        "authorize",
        "quota",
    ]
    assert [s.name for s in minimal.stages] == ["authenticate", "revocation", "authorize"]
    # The pure ones are called, not awaited; the conditional ones asked first.
    assert [(pure is not None, condition is not None) for pure, condition, _ in full.steps] == [
        (False, False),
        (False, False),
        (True, False),
        (False, True),
        (True, False),
        (False, True),
    ]
    assert all(
        isinstance(s, PureStage) == (s.name in ("revocation", "authorize")) for s in full.stages
    )


async def test_check_and_explain_run_the_same_stages(compiled: Compiled) -> None:
    checks = CheckService(lambda: compiled.config)

    explanation = await checks.explain(request())
    evaluation = await checks.check(request())

    assert evaluation.decision == explanation.decision
    assert (evaluation.decision.reason, evaluation.decision.rule) == (Reason.ALLOWED, "api")
    assert evaluation.compiled is compiled.config
    assert explanation.quota is not None and explanation.lockout is not None
    assert [r.rule for r in explanation.trace.rules if r.decided] == ["api"]
    assert explanation.credential == "test credential from header x-test-credential"


async def test_explain_has_no_side_effect_check_does(compiled: Compiled) -> None:
    checks = CheckService(lambda: compiled.config)
    for _ in range(QUOTA_LIMIT + 3):
        assert (await checks.explain(request())).decision.allowed
        assert (await checks.explain(request(credential="wrong"))).decision.reason is (
            Reason.INVALID_API_KEY
        )
    assert compiled.store.charged == 0  # no quota charged, no failure counted

    for _ in range(QUOTA_LIMIT):
        assert (await checks.check(request())).decision.allowed
    assert (await checks.check(request())).decision.reason is Reason.RATE_LIMITED
    assert (await checks.explain(request())).decision.reason is Reason.RATE_LIMITED


async def test_explain_of_a_locked_out_address_still_shows_who_and_what_rbac_says(
    compiled: Compiled,
) -> None:
    checks = CheckService(lambda: compiled.config)
    for _ in range(2):
        await checks.check(request(credential="wrong"))  # two failures: locked out

    checked = (await checks.check(request())).decision
    explanation = await checks.explain(request())

    assert checked.reason is Reason.LOCKED_OUT
    assert explanation.decision == checked  # Check's very answer
    assert explanation.lockout is not None and explanation.lockout.locked
    assert explanation.credential != "none"  # authentication still ran
    assert [r.rule for r in explanation.trace.rules if r.decided] == ["api"]
    assert explanation.quota is None  # stages that act on an allow did not run


async def test_a_failing_stage_fails_closed(compiled: Compiled) -> None:
    class Broken:
        token_cache = compiled.authenticator.token_cache

        async def authenticate(self, request: RequestAttributes) -> None:
            raise RuntimeError("a bug")

    broken = dataclasses.replace(compiled.config, authenticator=Broken())  # type: ignore[arg-type]
    evaluation = await CheckService(lambda: broken).check(request())

    assert (evaluation.decision.outcome, evaluation.decision.reason) == (
        Outcome.UNAVAILABLE,
        Reason.INTERNAL_ERROR,
    )


def test_a_request_no_stage_decided_is_not_allowed(compiled: Compiled) -> None:
    undecided = Evaluation(request(), compiled.config)
    assert undecided.decision is UNDECIDED
    assert not UNDECIDED.allowed and UNDECIDED.outcome is Outcome.UNAVAILABLE


async def test_a_reload_swaps_the_pipeline(compile_document: Any) -> None:
    with_lockout = compile_document(document())
    without = compile_document(document(brute_force=False))
    current = [with_lockout]
    checks = CheckService(lambda: current[0].config)
    for _ in range(2):
        await checks.check(request(credential="wrong"))
    assert (await checks.check(request())).decision.reason is Reason.LOCKED_OUT

    current[0] = without

    assert (await checks.check(request())).decision.allowed
    assert all(hit.algorithm != "lockout" for batch in without.store.asked for hit in batch)


async def test_revocations_are_the_process_s_not_the_config_s(compiled: Compiled) -> None:
    from authz_service.decisions import AuthMethod, Identity

    token = Identity("alice", AuthMethod.JWT, issuer="https://idp", token_id="jti-9")
    compiled.authenticator.answers = {"token": token}
    revocations = RevocationList()
    checks = CheckService(lambda: compiled.config, revocations)
    assert (await checks.check(request(credential="token"))).decision.allowed

    revocations.add_jti("jti-9", expires_at=4_000_000_000)

    assert (await checks.check(request(credential="token"))).decision.reason is (
        Reason.TOKEN_REVOKED
    )
    assert (await checks.explain(request(credential="token"))).decision.reason is (
        Reason.TOKEN_REVOKED
    )
