"""What a Check audit record keeps while it waits in the queue: the line's fields only."""

from __future__ import annotations

import dataclasses
import json

from authz_service.decisions import (
    AuthMethod,
    Decision,
    Identity,
    Outcome,
    Reason,
    RequestAttributes,
)
from authz_service.telemetry.audit import CheckRecord

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
REQUEST = RequestAttributes(
    method="GET",
    host="api.example.com",
    path="/api/orders?card=4111111111111111",
    headers={"authorization": f"Bearer {TOKEN}", "x-padding": "p" * 50_000},
    source_address="198.51.100.7",
    request_id="req-1",
)
DECISION = Decision(
    Outcome.ALLOW,
    Reason.ALLOWED,
    "ok",
    policy="public",
    rule="api",
    identity=Identity("alice", AuthMethod.JWT, roles=frozenset({"reader"}), claims={"t": TOKEN}),
)


def record() -> CheckRecord:
    return CheckRecord.of(REQUEST, DECISION, 0.001, "", "", None, 0.0)


def test_a_queued_check_record_holds_no_header_no_token_and_no_claim() -> None:
    values = [getattr(record(), field.name) for field in dataclasses.fields(CheckRecord)]

    assert not any(value is REQUEST.headers or value is DECISION.identity for value in values)
    assert all(TOKEN not in str(value) for value in values)
    assert record().nbytes < 2_000  # the 50 KB header is not in it


def test_a_lockout_carries_no_rate_limit_field_and_a_quota_refusal_does() -> None:
    locked = Decision(Outcome.RATE_LIMITED, Reason.LOCKED_OUT, "locked")
    quota = Decision(Outcome.RATE_LIMITED, Reason.RATE_LIMITED, "too many", policy="public")

    def authz(decision: Decision) -> dict[str, object]:
        line = CheckRecord.of(REQUEST, decision, 0.001, "", "", None, 0.0).line()
        parsed: dict[str, object] = json.loads(line)["authz"]
        return parsed

    assert "rate_limit" not in authz(locked)
    assert authz(quota)["rate_limit"] == "over_limit"
