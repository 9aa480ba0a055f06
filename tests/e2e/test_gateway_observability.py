"""What Prometheus and Jaeger get from the gateway: the metrics listener and OTLP traces."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import Gateway, Stack, running_stack
from tests.e2e.gateway import SpanReceiver

pytestmark = pytest.mark.envoy


@pytest.fixture
def stack(gateway: Gateway) -> Stack:
    """The shared gateway stack (its spy answers OK): one set of processes for these modules."""
    return gateway.stack


def test_the_metrics_listener_serves_prometheus_stats_only(stack: Stack) -> None:
    with httpx.Client(timeout=5) as client:
        metrics = client.get(stack.metrics_url + "/stats/prometheus")
        config_dump = client.get(stack.metrics_url + "/config_dump")
        quit_ = client.post(stack.metrics_url + "/quitquitquit")

    assert metrics.status_code == 200
    assert "envoy_http_downstream_rq_total" in metrics.text
    assert config_dump.status_code == 404
    assert quit_.status_code == 404
    assert stack.envoy.popen.poll() is None


@pytest.fixture(scope="module")
def traced(
    tmp_path_factory: pytest.TempPathFactory, envoy_available: str
) -> Iterator[tuple[Stack, SpanReceiver]]:
    receiver = SpanReceiver()
    try:
        with running_stack(
            tmp_path_factory.mktemp("traced"), envoy_values={"OTLP_PORT": receiver.port}
        ) as stack:
            yield stack, receiver
    finally:
        receiver.stop()


def test_envoy_exports_one_trace_per_request_with_the_authorization_call(
    traced: tuple[Stack, SpanReceiver],
) -> None:
    stack, receiver = traced
    token = stack.idp.mint("alice", roles=["editor"])
    with stack.client() as client:
        echoes = [
            client.get(
                stack.public_url + "/api/orders", headers={"authorization": f"Bearer {token}"}
            ).json()
            for _ in range(5)  # Envoy flushes its span buffer after 5 spans (or 5 s)
        ]
    traceparent = echoes[0]["headers"]["traceparent"]
    trace_id = bytes.fromhex(traceparent.split("-")[1])

    deadline = time.monotonic() + 8
    spans: list = []
    while time.monotonic() < deadline:
        spans = [span for span in receiver.snapshot() if span.trace_id == trace_id]
        if len(spans) >= 2:
            break
        time.sleep(0.1)

    names = [span.name for span in spans]
    assert any("Authorization" in name for name in names), names
    ingress = [span for span in spans if not span.parent_span_id]
    assert len(ingress) == 1, names
