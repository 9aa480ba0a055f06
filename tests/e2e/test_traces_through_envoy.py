"""One trace in Jaeger's terms: Envoy ingress -> ext_authz Check -> ShouldRateLimit -> upstream.

Envoy's OpenTelemetry tracer and authz_service both export to one OTLP receiver; the service's
server spans must be children of the egress spans Envoy made for its two calls, whether
ext_authz asks over gRPC or over HTTP (the traceparent header of the check request).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Stack, running_stack
from tests.support.otlp import OtlpReceiver, ReceivedSpan, running_otlp_receiver
from tools.envoy_transports import TRANSPORTS

pytestmark = pytest.mark.envoy

SERVER = 2  # SpanKind.SERVER in OTLP


# The service's server span of an ext_authz call: its rpc.method, and a word of the name of
# Envoy's egress span it must be the child of.
CHECK_SPANS = {"grpc": ("Check", "Authorization"), "http": ("envoy", "authz_http")}


@pytest.fixture(scope="module", params=TRANSPORTS)
def traced(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, envoy_available: str
) -> Iterator[tuple[Stack, OtlpReceiver, str]]:
    with running_otlp_receiver() as receiver:

        def export_to_receiver(config: dict[str, Any]) -> None:
            config["telemetry"]["tracing"] = {
                "exporter": "otlp_grpc",
                "endpoint": f"http://127.0.0.1:{receiver.port}",
            }

        with running_stack(
            tmp_path_factory.mktemp(f"traces-{request.param}"),
            edit_config=export_to_receiver,
            envoy_values={"OTLP_PORT": receiver.port},
            transport=request.param,
        ) as stack:
            yield stack, receiver, request.param


def one_trace(stack: Stack, receiver: OtlpReceiver) -> list[ReceivedSpan]:
    token = stack.idp.mint("alice", roles=["editor"], extra_claims={"tier": "gold"})
    with stack.client() as client:
        echoes = [
            client.get(
                stack.public_url + "/api/orders", headers={"authorization": f"Bearer {token}"}
            ).json()
            for _ in range(5)  # Envoy flushes its span buffer after 5 spans (or 5 s)
        ]
    trace_id = echoes[0]["headers"]["traceparent"].split("-")[1]

    def complete(spans: list[ReceivedSpan]) -> bool:
        ours = [s for s in spans if s.trace_id == trace_id and s.service_name == "authz-service"]
        return (
            sum(s.kind == SERVER for s in ours) >= 2
            and len([s for s in spans if s.trace_id == trace_id]) >= 5
        )

    return [s for s in receiver.wait_for(complete) if s.trace_id == trace_id]


def test_service_spans_are_children_of_envoys_egress_spans(
    traced: tuple[Stack, OtlpReceiver, str],
) -> None:
    stack, receiver, transport = traced
    check_method, envoy_span_word = CHECK_SPANS[transport]
    spans = one_trace(stack, receiver)
    by_id = {s.span_id: s for s in spans}
    ours = [s for s in spans if s.service_name == "authz-service" and s.kind == SERVER]
    check = next(s for s in ours if s.attributes["rpc.method"] == check_method)
    limit = next(s for s in ours if s.attributes["rpc.method"] == "ShouldRateLimit")

    check_parent = by_id[check.parent_span_id]
    limit_parent = by_id[limit.parent_span_id]

    assert check_parent.service_name != "authz-service"  # Envoy's span
    assert envoy_span_word in check_parent.name, check_parent.name
    assert limit_parent.service_name != "authz-service"
    assert "RateLimit" in limit_parent.name
    roots = [s for s in spans if not s.parent_span_id]
    assert len(roots) == 1  # Envoy's ingress span: the whole request is one trace


def test_service_spans_carry_the_decision_and_rate_limit_attributes(
    traced: tuple[Stack, OtlpReceiver, str],
) -> None:
    stack, receiver, transport = traced
    spans = one_trace(stack, receiver)
    ours = {
        s.attributes.get("rpc.method"): s
        for s in spans
        if s.kind == SERVER and s.service_name == "authz-service"
    }

    check = ours[CHECK_SPANS[transport][0]].attributes
    assert check["authz.decision"] == "allow"
    assert check["authz.policy"] == "public"
    assert check["authz.rule"] == "api-reads"
    assert check["enduser.id"] == "alice"
    limit = ours["ShouldRateLimit"].attributes
    assert limit["authz.ratelimit.domain"] == "gateway"
    assert {"remote_address", "user", "tier"} <= set(limit["authz.ratelimit.descriptor_keys"])


def test_service_to_service_calls_on_the_internal_listener_are_one_trace_too(
    traced: tuple[Stack, OtlpReceiver, str],
) -> None:
    stack, receiver, _transport = traced
    with stack.client() as client:
        echoes = [
            client.get(
                stack.internal_url + "/internal/jobs", headers={"x-api-key": "dev-only-api-key"}
            ).json()
            for _ in range(5)  # Envoy flushes its span buffer after 5 spans (or 5 s)
        ]
    trace_id = echoes[0]["headers"]["traceparent"].split("-")[1]

    def has_check(spans: list[ReceivedSpan]) -> bool:
        return any(
            s.trace_id == trace_id and s.service_name == "authz-service" and s.kind == SERVER
            for s in spans
        )

    spans = [s for s in receiver.wait_for(has_check) if s.trace_id == trace_id]
    check = next(s for s in spans if s.service_name == "authz-service" and s.kind == SERVER)
    parent = next(s for s in spans if s.span_id == check.parent_span_id)
    assert parent.service_name != "authz-service"  # Envoy's egress span for the Check call
    assert check.attributes["authz.policy"] == "internal"
