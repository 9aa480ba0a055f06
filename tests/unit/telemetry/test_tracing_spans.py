"""Span work follows the sampling decision: under a server span that was not sampled, no
child span is built (ParentBased would drop it anyway); under a sampled one, children are
recorded as before. The SDK with an in-memory exporter, ratio 0 for roots."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from authz_service.telemetry import tracing

SAMPLED_PARENT = (("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),)


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    monkeypatch.setattr(tracing, "enabled", True)
    yield exporter
    provider.shutdown()


def test_no_child_span_is_built_under_a_server_span_that_was_not_sampled(
    exported: InMemorySpanExporter,
) -> None:
    with tracing.server_span("svc", "Check", None) as server, tracing.child_span("x") as child:
        assert not server.is_recording()

    assert child is tracing.INVALID_SPAN
    assert exported.get_finished_spans() == ()


def test_children_of_a_sampled_server_span_are_recorded(exported: InMemorySpanExporter) -> None:
    sampled = tracing.server_span("svc", "Check", SAMPLED_PARENT)
    with sampled as server, tracing.child_span("authz.rbac") as child:
        assert server.is_recording() and child.is_recording()

    names = [span.name for span in exported.get_finished_spans()]
    assert names == ["authz.rbac", "svc/Check"]


def test_a_span_outside_any_request_is_still_a_root(exported: InMemorySpanExporter) -> None:
    # A background JWKS fetch has no parent: it is sampled (or not) as a root, not skipped.
    with tracing.child_span("jwks.fetch") as span:
        pass

    assert span is not tracing.INVALID_SPAN
