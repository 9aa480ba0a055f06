"""The one transport seam: every way out of a check (decided, refused unread, shed, an error
past the decision) is reported once, through the same metrics and audit line, and fails
closed; refusals follow errors.py's mapping."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import Span

from authz_service.decisions import Decision, Outcome, Reason, RequestAttributes
from authz_service.errors import (
    Overloaded,
    RequestRefused,
    RequestTooLarge,
    UnreadableRequest,
)
from authz_service.schema import AuditSettings, RequestLimits, TelemetrySettings
from authz_service.services.check import CheckService
from authz_service.services.check_use_case import CheckUseCase, refusal
from authz_service.services.compiled_config import CompiledConfig
from authz_service.services.sanitise import UNREADABLE_REQUEST, refused_head
from authz_service.telemetry.audit_log import AuditLog
from authz_service.telemetry.metrics import Metrics
from authz_service.telemetry.reporter import Reporter
from tests.unit.services.conftest import Compiled, request

RPC = "FakeCheck"


class FakeTransport:
    """Reads a dict wire: {"request": RequestAttributes} or {"raise": an exception}."""

    span_service = "test.Fake"
    span_method = "Check"
    span_attributes: Mapping[str, Any] | None = None

    def __init__(self) -> None:
        self.broken_answers = False
        self.described: list[object] = []

    def metadata(self, context: None) -> None:
        return None

    def read(self, wire: dict[str, Any], limits: RequestLimits) -> RequestAttributes:
        if "raise" in wire:
            raise wire["raise"]
        request_attributes: RequestAttributes = wire["request"]
        return request_attributes

    def refused(self, wire: dict[str, Any], error: RequestRefused) -> RequestAttributes:
        if isinstance(error, RequestTooLarge):
            return refused_head("GET", "api.example.com", "/x" * 500)
        return UNREADABLE_REQUEST

    def answer(
        self,
        wire: dict[str, Any],
        decision: Decision,
        compiled: CompiledConfig,
        request: RequestAttributes,
    ) -> tuple[int, Decision]:
        if self.broken_answers:
            raise RuntimeError("a bug while building the answer")
        status = 200 if decision.allowed else compiled.responses.deny(decision).status
        return status, decision

    def describe(self, span: Span, answer: object) -> None:
        self.described.append(answer)


class Seam:
    def __init__(self, compiled: Compiled, audit_path: Path, max_in_flight: int | None) -> None:
        self.metrics = Metrics()
        settings = TelemetrySettings(audit=AuditSettings(output=str(audit_path)))
        audit = AuditLog(settings.audit, synchronous=True)
        self.reporter = Reporter(settings, self.metrics, audit)
        self.use_case = CheckUseCase(
            CheckService(lambda: compiled.config), self.reporter, RPC, max_in_flight
        )
        self.transport = FakeTransport()
        self.audit_path = audit_path

    async def check(self, wire: dict[str, Any]) -> tuple[int, Decision]:
        answer: tuple[int, Decision] = await self.use_case.check(self.transport, wire, None)
        return answer

    def counted(self, decision: str, reason: str, policy: str = "-") -> float:
        labels = {"decision": decision, "reason": reason, "policy": policy}
        return self.metrics.registry.get_sample_value("authz_check_decisions_total", labels) or 0

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    def audit_lines(self) -> list[dict[str, Any]]:
        self.reporter.close()
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]


@pytest.fixture
def seam(compiled: Compiled, tmp_path: Path) -> Iterator[Seam]:
    built = Seam(compiled, tmp_path / "audit.jsonl", max_in_flight=None)
    yield built
    built.reporter.close()


async def test_a_decided_check_is_answered_counted_and_audited_once(seam: Seam) -> None:
    status, decision = await seam.check({"request": request()})

    assert (status, decision.reason) == (200, Reason.ALLOWED)
    assert seam.counted("allow", "allowed", "main") == 1
    (line,) = seam.audit_lines()
    assert (line["event"]["reason"], line["url"]["path"]) == ("allowed", "/api/orders")
    assert seam.transport.described == []  # no span recording: nothing to describe
    assert seam.sample("authz_rpc_in_flight", rpc=RPC) == 0


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        (UnreadableRequest("missing or invalid x-original-uri"), 403, "bad_request"),
        (RequestTooLarge("11 headers; at most 10 are accepted"), 431, "request_too_large"),
        (ValueError("a translator bug"), 403, "bad_request"),
    ],
)
async def test_a_request_refused_unread_is_denied_counted_and_audited(
    seam: Seam, error: Exception, status: int, reason: str
) -> None:
    answered, decision = await seam.check({"raise": error})

    assert (answered, decision.reason.value) == (status, reason)
    assert seam.counted(decision.outcome.value, reason) == 1
    (line,) = seam.audit_lines()
    assert line["event"]["reason"] == reason
    assert line["authz"]["http_status"] == status
    if isinstance(error, RequestTooLarge):
        assert len(line["url"]["path"]) == 256  # the sanitiser's cut
    # A bug in a translator says nothing of itself to the client.
    expected = str(error) if isinstance(error, RequestRefused) else "request could not be read"
    assert decision.message == expected


async def test_checks_past_the_limit_are_shed_before_any_work(
    compiled: Compiled, tmp_path: Path
) -> None:
    seam = Seam(compiled, tmp_path / "audit.jsonl", max_in_flight=1)
    compiled.authenticator.release = asyncio.Event()
    held = asyncio.create_task(seam.check({"request": request()}))
    await compiled.authenticator.waiting.wait()  # the held check is in flight

    shed_status, shed = await seam.check({"request": request()})
    in_flight_while_shed = seam.sample("authz_rpc_in_flight", rpc=RPC)
    compiled.authenticator.release.set()
    held_status, _ = await held

    assert (shed_status, shed.reason, shed.extra_headers) == (
        503,
        Reason.OVERLOADED,
        {"retry-after": "1"},
    )
    assert held_status == 200
    assert len(compiled.authenticator.asked) == 1  # the shed one was never read
    assert in_flight_while_shed == 1  # a shed check is not in flight
    assert seam.counted("unavailable", "overloaded") == 1
    assert [line["event"]["reason"] for line in seam.audit_lines()] == ["overloaded", "allowed"]


async def test_an_error_past_the_decision_is_counted_and_raised(seam: Seam) -> None:
    seam.transport.broken_answers = True

    with pytest.raises(RuntimeError, match="building the answer"):
        await seam.check({"request": request()})

    assert seam.sample("authz_rpc_errors_total", rpc=RPC, code="UNKNOWN") == 1
    assert seam.sample("authz_rpc_in_flight", rpc=RPC) == 0
    assert seam.counted("allow", "allowed", "main") == 1  # reported before answering


@pytest.mark.parametrize(
    ("error", "outcome", "reason", "status"),
    [
        (UnreadableRequest("x"), Outcome.FORBIDDEN, Reason.BAD_REQUEST, 403),
        (RequestTooLarge("x"), Outcome.FORBIDDEN, Reason.REQUEST_TOO_LARGE, 431),
        (Overloaded("x"), Outcome.UNAVAILABLE, Reason.OVERLOADED, 503),
    ],
)
def test_refusals_follow_the_error_mapping_and_the_answer_agrees(
    compiled: Compiled,
    error: RequestRefused,
    outcome: Outcome,
    reason: Reason,
    status: int,
) -> None:
    decision = refusal(error)
    denied = compiled.config.responses.deny(decision)

    assert (decision.outcome, decision.reason, decision.message) == (outcome, reason, "x")
    assert denied.status == error.http_status == status
    retry_after = denied.headers.get("retry-after")
    assert retry_after == (str(error.retry_after_s) if error.retry_after_s else None)
