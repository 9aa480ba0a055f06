"""Quota inside Check (`check_quota`): descriptors built from the request and the identity
just established, counted against a rate-limit domain in the same call. After RBAC, so a
refused request is never charged. Over a limit: 429 with rate-limit headers and the body the
RateLimitService would give; the store unavailable under failure_mode "unavailable": 503.
Explain previews the next request's answer, charging nothing."""

from __future__ import annotations

from dataclasses import replace

from authz_service.decisions import Decision, Outcome, Reason
from authz_service.ratelimit.limiter import RateLimiter
from authz_service.ratelimit.response import over_limit_body, rate_limit_headers
from authz_service.ratelimit.results import RateLimitResult
from authz_service.ratelimit.store import StoreUnavailable
from authz_service.services.check_quota import CheckQuotaDescriptors
from authz_service.services.explanation import Explanation, QuotaPreview
from authz_service.services.pipeline import Evaluation, Stage, StageInputs
from authz_service.telemetry import tracing


def quota_refusal(result: RateLimitResult | None, decision: Decision) -> Decision | None:
    """The allow turned into 429 when over a limit, or 503 when the store could not answer
    (None); None when within every limit."""
    if result is None:
        # failure_mode "unavailable": fail closed with 503 (allow/deny modes never raise).
        return replace(
            decision,
            outcome=Outcome.UNAVAILABLE,
            reason=Reason.RATE_LIMIT_UNAVAILABLE,
            message="rate-limit store unavailable",
        )
    if not result.over_limit:
        return None
    headers = rate_limit_headers(result)
    headers["retry-after"] = headers.get("x-ratelimit-reset", "1")
    return replace(
        decision,
        outcome=Outcome.RATE_LIMITED,
        reason=Reason.RATE_LIMITED,
        message="too many requests",
        extra_headers=headers,
        body=over_limit_body(result).decode(),
    )


class QuotaStage(Stage):
    name = "quota"

    def __init__(self, quota: CheckQuotaDescriptors, limiter: RateLimiter) -> None:
        self._quota = quota
        self._limiter = limiter
        self._span_attributes = {"authz.ratelimit.domain": quota.domain}

    @classmethod
    def build(cls, inputs: StageInputs) -> QuotaStage | None:
        compiled = inputs.compiled
        if compiled.quota is None or compiled.limiter is None:
            return None
        return cls(compiled.quota, compiled.limiter)

    def applies_to(self, evaluation: Evaluation) -> bool:
        return evaluation.decision.allowed  # a refused request is not charged

    async def enforce(self, evaluation: Evaluation) -> Decision | None:
        decision = evaluation.decision
        quota = self._quota
        with tracing.child_span("authz.quota", self._span_attributes):
            descriptors = quota.descriptors(evaluation.request, decision.identity)
            if not descriptors:
                return None
            try:
                result: RateLimitResult | None = await self._limiter.check_descriptors(
                    quota.domain, descriptors
                )
            except StoreUnavailable:
                result = None
        return quota_refusal(result, decision)

    async def explain(self, evaluation: Evaluation, explanation: Explanation) -> Decision | None:
        decision = evaluation.decision
        quota = self._quota
        descriptors = quota.descriptors(evaluation.request, decision.identity)
        if not descriptors:
            return None
        try:
            result = await self._limiter.preview_descriptors(quota.domain, descriptors)
        except StoreUnavailable:
            result = None
        entries = tuple(tuple(entry) for entry in descriptors)
        explanation.quota = QuotaPreview(quota.domain, entries, result)
        return quota_refusal(result, decision)
