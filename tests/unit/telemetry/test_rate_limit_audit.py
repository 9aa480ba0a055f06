"""The audit line of a ShouldRateLimit answer (ECS field names, like the Check line)."""

from __future__ import annotations

import json

from authz_service.ratelimit.results import (
    Code,
    CurrentLimit,
    Descriptor,
    DescriptorStatus,
    RateLimitResult,
)
from authz_service.telemetry.audit import rate_limit_audit_line

DESCRIPTORS = (
    Descriptor((("remote_address", "203.0.113.9"),)),
    Descriptor((("tier", "free"), ("user", "bob"))),
)


def line(result: RateLimitResult | None) -> dict[str, object]:
    text = rate_limit_audit_line("gateway", DESCRIPTORS, result, duration_s=0.002, now=0.0)
    parsed: dict[str, object] = json.loads(text)
    return parsed


def test_a_store_that_could_not_answer_is_audited_as_unavailable() -> None:
    record = line(None)
    assert record["event"] == {
        "kind": "event",
        "category": ["web"],
        "type": ["denied"],
        "action": "rate-limit-check",
        "outcome": "failure",
        "reason": "store_unavailable",
        "duration": 2_000_000,
    }
    assert record["authz"] == {
        "decision": "unavailable",
        "ratelimit": {
            "domain": "gateway",
            "descriptors": [
                [["remote_address", "203.0.113.9"]],
                [["tier", "free"], ["user", "bob"]],
            ],
        },
    }


def test_shadow_mode_shows_as_an_allow_that_still_names_the_tripped_limit() -> None:
    shadowed = RateLimitResult(
        Code.OK,  # global shadow mode: the answer never blocks
        (
            DescriptorStatus(Code.OK, CurrentLimit(600, "minute"), 500, 10.0),
            DescriptorStatus(Code.OVER_LIMIT, CurrentLimit(10, "minute", "free"), 0, 10.0),
        ),
    )
    record = line(shadowed)
    assert record["authz"]["decision"] == "allow"  # type: ignore[index]
    assert record["authz"]["ratelimit"]["tripped"] == ["free"]  # type: ignore[index]
