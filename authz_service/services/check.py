"""The Check use case: run the current config's pipeline over a request, in one of two modes.

`check` enforces (Check, the HTTP check endpoint, the Lambda authorizer, all through
services/check_use_case.py); `explain` runs the same stages with no side effect and says why
(the admin API and `authz-service explain`). Same stages, same code: explain cannot disagree
with Check.

Any unexpected error in Check becomes a deny (fail closed): an authorization service that
allows on its own bugs is worse than none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from authz_service.authn.revocation import RevocationList
from authz_service.decisions import Decision, Outcome, Reason, RequestAttributes
from authz_service.services.compiled_config import CompiledConfig
from authz_service.services.explanation import Explanation
from authz_service.services.pipeline import Evaluation, Pipeline, StageInputs
from authz_service.services.stages import build_pipeline

log = logging.getLogger(__name__)

INTERNAL_ERROR = Decision(Outcome.UNAVAILABLE, Reason.INTERNAL_ERROR, "internal error")


class CheckService:
    def __init__(
        self, current: Callable[[], CompiledConfig], revocations: RevocationList | None = None
    ):
        self._current = current
        self._revocations = revocations if revocations is not None else RevocationList()
        # The pipeline of the last config seen: rebuilt when a reload swaps the config.
        self._compiled: CompiledConfig | None = None
        self._pipeline = Pipeline(())

    def compiled_config(self) -> CompiledConfig:
        return self._current()

    def _pipeline_for(self, compiled: CompiledConfig) -> Pipeline:
        if compiled is not self._compiled:
            self._pipeline = build_pipeline(StageInputs(compiled, self._revocations))
            self._compiled = compiled
        return self._pipeline

    async def check(self, request: RequestAttributes) -> Evaluation:
        """Decide `request` (enforce mode); the decision is `.decision`, the config it was
        decided under (and is to be answered with) `.compiled`."""
        compiled = self._current()
        evaluation = Evaluation(request, compiled)
        try:
            pipeline = (
                self._pipeline if compiled is self._compiled else self._pipeline_for(compiled)
            )
            # The stage loop itself (no helper coroutine): the common path stays as shallow
            # as the stages are, and a pure stage costs a call, not an await.
            for pure, applies_to, stage in pipeline.steps:
                if applies_to is not None and not applies_to(evaluation):
                    continue
                if pure is not None:
                    answer = pure.decide(evaluation, None)
                else:
                    answer = await stage.enforce(evaluation)
                if answer is not None:
                    evaluation.decision = answer
                    break
        except Exception:
            log.exception("check failed; denying")
            evaluation.decision = INTERNAL_ERROR
        return evaluation

    async def explain(self, request: RequestAttributes) -> Explanation:
        """Check's decision with what every stage found, and no side effect: no quota
        charged, no failure counted, no one-time token used. After a refusal, the stages
        that only read still run (`explains_after_refusal`): a locked-out address still
        shows who the caller is and how RBAC would decide."""
        compiled = self._current()
        evaluation = Evaluation(request, compiled)
        explanation = Explanation()
        answer: Decision | None = None
        for stage in self._pipeline_for(compiled).stages:
            if answer is not None and not stage.explains_after_refusal:
                continue
            if not stage.applies_to(evaluation):
                continue
            found = await stage.explain(evaluation, explanation)
            if answer is None:
                answer = found
        explanation.decision = answer if answer is not None else evaluation.decision
        return explanation
