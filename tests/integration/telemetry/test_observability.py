"""Traces, metrics and the audit log of a real service process after a known sequence of RPCs."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
import yaml
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.support.idp import wait_until
from tests.support.otlp import OtlpReceiver, ReceivedSpan, running_otlp_receiver
from tests.support.windows import clear_of_window_edge
from tools.dev_idp import DevIdentityProvider
from tools.processes import Process, free_port, start_authz, wait_for_port

API_KEY = "ak-" + secrets.token_hex(8)
COOKIE_SECRET = "session-" + secrets.token_hex(8)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
ENVOY_SPAN_ID = "00f067aa0ba902b7"


@dataclass
class Observed:
    service: Process
    receiver: OtlpReceiver
    audit_path: Path
    metrics_url: str
    token: str
    spans: list[ReceivedSpan]
    metrics_text: str


def check_request(
    path: str, headers: dict[str, str], method: str = "GET"
) -> external_auth_pb2.CheckRequest:
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method, http.path, http.host = method, path, "api.local"
    http.id = "req-" + path.partition("?")[0]
    http.headers.update(headers)
    request.attributes.source.address.socket_address.address = "198.51.100.7"
    return request


def traceparent(span_id: str = ENVOY_SPAN_ID) -> tuple[tuple[str, str], ...]:
    return (("traceparent", f"00-{TRACE_ID}-{span_id}-01"),)


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    workdir = tmp_path_factory.mktemp("observability")
    idp = DevIdentityProvider()
    idp.start()
    with running_otlp_receiver() as receiver:
        port, metrics_port = free_port(), free_port()
        audit_path = workdir / "audit.jsonl"
        config = {
            "server": {"listen": f"127.0.0.1:{port}", "watch_config": False, "grace_period_s": 1},
            "admin": {"listen": None},
            "telemetry": {
                "service_name": "authz-under-test",
                "tracing": {
                    "exporter": "otlp_grpc",
                    "endpoint": f"http://127.0.0.1:{receiver.port}",
                },
                "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
                "audit": {"output": str(audit_path)},
            },
            "jwt_providers": [
                {
                    "name": "dev",
                    "issuer": idp.issuer,
                    "audiences": [idp.audience],
                    "jwks_uri": idp.jwks_uri,
                    "roles_claims": ["realm_access.roles"],
                }
            ],
            "api_keys": {
                "keys": [
                    {
                        "name": "ci",
                        "hash": "sha256:"
                        + __import__("hashlib").sha256(API_KEY.encode()).hexdigest(),
                        "principal": "svc:ci",
                        "roles": ["deployer"],
                    }
                ]
            },
            "rate_limit": {
                "store": "memory",
                "domains": [
                    {
                        "domain": "edge",
                        "descriptors": [
                            {
                                "key": "user",
                                "rate_limit": {
                                    "name": "per_user",
                                    "unit": "minute",
                                    "requests_per_unit": 2,
                                },
                            }
                        ],
                    }
                ],
            },
            "policies": {
                "default": {
                    "rules": [
                        {
                            "name": "open",
                            "match": {"paths": [{"prefix": "/public/"}]},
                            "allow": "anonymous",
                        },
                        {
                            "name": "admin",
                            "match": {"paths": [{"prefix": "/admin/"}]},
                            "allow": {"roles_any": ["admin"]},
                        },
                        {
                            "name": "api",
                            "match": {"paths": [{"prefix": "/api/"}]},
                            "allow": "authenticated",
                        },
                    ]
                }
            },
        }
        config_path = workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(config))
        service = start_authz(config_path, port, workdir)
        wait_for_port(metrics_port)
        token = idp.mint("alice", roles=["reader"])
        clear_of_window_edge()  # the three ShouldRateLimit calls count in one minute
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                check = external_auth_pb2_grpc.AuthorizationStub(channel).Check
                auth = {"authorization": f"Bearer {token}", "cookie": f"sid={COOKIE_SECRET}"}
                check(
                    check_request("/api/orders?card=4111111111111111", auth),
                    metadata=traceparent(),
                    timeout=5,
                )
                check(
                    check_request("/public/page", {"x-api-key": API_KEY}),
                    metadata=traceparent(),
                    timeout=5,
                )
                check(check_request("/api/orders", {}), metadata=traceparent(), timeout=5)
                check(check_request("/admin/users", auth), metadata=traceparent(), timeout=5)
                limit = rls_pb2_grpc.RateLimitServiceStub(channel).ShouldRateLimit
                for _ in range(3):
                    request = rls_pb2.RateLimitRequest(domain="edge")
                    request.descriptors.add().entries.add(key="user", value="alice")
                    limit(request, metadata=traceparent("00f067aa0ba902b8"), timeout=5)
            spans = receiver.wait_for(
                lambda spans: sum(s.kind == 2 for s in spans) >= 7 and len(spans) >= 15
            )
            # The audit writer flushes on its own schedule: wait for its seven lines too.
            asyncio.run(
                wait_until(
                    lambda: audit_path.exists() and len(audit_path.read_text().splitlines()) >= 7,
                    within_s=10.0,
                )
            )
            metrics_text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            yield Observed(
                service,
                receiver,
                audit_path,
                f"http://127.0.0.1:{metrics_port}",
                token,
                spans,
                metrics_text,
            )
        finally:
            service.stop()
            idp.stop()


def server_spans(observed: Observed, method: str) -> list[ReceivedSpan]:
    return [s for s in observed.spans if s.kind == 2 and s.attributes.get("rpc.method") == method]


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for metric in family.samples:
            if metric.name == name and all(metric.labels.get(k) == v for k, v in labels.items()):
                return float(metric.value)
    raise AssertionError(f"no sample {name} {labels}")


def test_check_server_spans_continue_envoys_trace(observed: Observed) -> None:
    spans = server_spans(observed, "Check")

    assert len(spans) == 4
    assert {s.trace_id for s in spans} == {TRACE_ID}
    assert {s.parent_span_id for s in spans} == {ENVOY_SPAN_ID}
    assert {s.service_name for s in spans} == {"authz-under-test"}


def test_check_span_attributes_describe_the_decision(observed: Observed) -> None:
    spans = server_spans(observed, "Check")
    by_reason = {s.attributes["authz.reason"]: s for s in spans}

    allowed = next(s for s in spans if s.attributes["authz.rule"] == "api")
    assert allowed.attributes["rpc.system"] == "grpc"
    assert allowed.attributes["rpc.service"] == "envoy.service.auth.v3.Authorization"
    assert allowed.attributes["authz.decision"] == "allow"
    assert allowed.attributes["authz.rule"] == "api"
    assert allowed.attributes["enduser.id"] == "alice"
    assert allowed.attributes["client.address"] == "198.51.100.7"
    assert by_reason["missing_role"].attributes["authz.decision"] == "forbidden"
    assert by_reason["authentication_required"].attributes["authz.decision"] == "unauthenticated"
    # A denial is still a successful RPC: Envoy got an answer.
    assert {s.attributes["rpc.grpc.status_code"] for s in spans} == {0}


def test_work_inside_check_has_child_spans(observed: Observed) -> None:
    check = next(
        s for s in server_spans(observed, "Check") if s.attributes["authz.reason"] == "allowed"
    )

    children = {s.name: s for s in observed.spans if s.parent_span_id == check.span_id}

    assert {"authz.authenticate", "authz.rbac"} <= children.keys()
    assert children["authz.authenticate"].attributes["authz.token_cache_hit"] is False


def test_rate_limit_spans_name_the_domain_and_the_tripped_limit(observed: Observed) -> None:
    spans = server_spans(observed, "ShouldRateLimit")

    assert len(spans) == 3
    assert {s.parent_span_id for s in spans} == {"00f067aa0ba902b8"}
    assert all(s.attributes["authz.ratelimit.domain"] == "edge" for s in spans)
    assert all(s.attributes["authz.ratelimit.descriptor_keys"] == ["user"] for s in spans)
    tripped = [s for s in spans if s.attributes.get("authz.ratelimit.tripped")]
    assert len(tripped) == 1
    assert tripped[0].attributes["authz.ratelimit.tripped"] == ["per_user"]
    assert {s.attributes["rpc.grpc.status_code"] for s in spans} == {0}
    store_spans = [s for s in observed.spans if s.name == "ratelimit.store"]
    assert {s.parent_span_id for s in store_spans} == {s.span_id for s in spans}


def test_metrics_count_the_known_sequence(observed: Observed) -> None:
    text = observed.metrics_text

    assert sample(text, "authz_check_decisions_total", decision="allow") == 2
    assert (
        sample(
            text,
            "authz_check_decisions_total",
            decision="unauthenticated",
            reason="authentication_required",
        )
        == 1
    )
    assert (
        sample(text, "authz_check_decisions_total", decision="forbidden", reason="missing_role")
        == 1
    )
    assert sample(text, "authz_rpc_duration_seconds_count", rpc="Check") == 4
    assert sample(text, "authz_rpc_duration_seconds_count", rpc="ShouldRateLimit") == 3
    assert sample(text, "authz_ratelimit_responses_total", domain="edge", code="ok") == 2
    assert sample(text, "authz_ratelimit_responses_total", domain="edge", code="over_limit") == 1
    assert (
        sample(text, "authz_ratelimit_limit_outcomes_total", limit="per_user", code="over_limit")
        == 1
    )
    assert sample(text, "authz_jwks_keys", provider="dev") == 1
    assert sample(text, "authz_token_cache_lookups_total", result="miss") >= 1
    assert sample(text, "authz_config_reloads_total", result="failure") == 0
    assert sample(text, "authz_rpc_in_flight", rpc="Check") == 0


def test_the_quota_store_chain_reports_its_figures(observed: Observed) -> None:
    text = observed.metrics_text

    # The memory store's own figures, and the local over-limit cache's around it: the third
    # ShouldRateLimit was over the limit, so its counter is remembered in-process.
    assert sample(text, "authz_quota_store", metric="memory_keys") >= 1
    assert sample(text, "authz_quota_store", metric="memory_max_keys") == 1_000_000
    assert sample(text, "authz_quota_store", metric="local_over_limit_entries") == 1


def test_health_endpoints_answer(observed: Observed) -> None:
    assert httpx.get(observed.metrics_url + "/healthz", timeout=5).status_code == 200
    ready = httpx.get(observed.metrics_url + "/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json()["ready"] is True


def test_audit_log_has_one_ecs_line_per_decision(observed: Observed) -> None:
    every = [json.loads(line) for line in observed.audit_path.read_text().splitlines()]
    lines = [line for line in every if line["event"]["action"] == "authorization-check"]

    assert len(lines) == 4
    first = lines[0]
    assert first["event"]["outcome"] == "success"
    assert first["event"]["reason"] == "allowed"
    assert first["http"]["request"] == {"id": "req-/api/orders", "method": "GET"}
    assert first["url"] == {"domain": "api.local", "path": "/api/orders", "query": "card=REDACTED"}
    assert first["user"]["id"] == "alice"
    assert first["client"]["ip"] == "198.51.100.7"
    assert first["trace"]["id"] == TRACE_ID
    assert first["authz"]["rule"] == "api"
    assert [line["authz"]["http_status"] for line in lines] == [200, 200, 401, 403]


def test_audit_log_has_a_line_per_rate_limit_decision(observed: Observed) -> None:
    every = [json.loads(line) for line in observed.audit_path.read_text().splitlines()]
    lines = [line for line in every if line["event"]["action"] == "rate-limit-check"]

    assert [line["event"]["reason"] for line in lines] == ["ok", "ok", "over_limit"]
    assert [line["authz"]["decision"] for line in lines] == ["allow", "allow", "rate_limited"]
    over = lines[-1]
    assert over["event"]["outcome"] == "failure"
    assert over["authz"]["ratelimit"] == {
        "domain": "edge",
        "descriptors": [[["user", "alice"]]],
        "tripped": ["per_user"],
    }
    assert over["trace"]["id"] == TRACE_ID
    assert len(every) == 4 + 3  # nothing else is written


def test_no_secret_appears_in_any_log_span_or_metric(observed: Observed) -> None:
    emitted = "\n".join(
        [
            observed.audit_path.read_text(),
            observed.service.log(),
            observed.metrics_text,
            json.dumps([s.attributes for s in observed.spans]),
        ]
    )
    signature = observed.token.rsplit(".", 1)[1]

    for secret in (observed.token, signature, API_KEY, COOKIE_SECRET, "4111111111111111"):
        assert secret not in emitted
