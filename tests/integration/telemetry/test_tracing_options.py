"""Tracing settings in a real service process: the OTLP/HTTP exporter, `hash_principal`, and
`sampling_ratio` (a sampled parent from Envoy is always followed; no parent, ratio 0: none)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from tests.support.idp import running_idp
from tests.support.otlp import OtlpReceiver, running_otlp_http_receiver
from tools.dev_idp import DevIdentityProvider
from tools.processes import Process, free_port, start_authz

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SAMPLED_PARENT = (("traceparent", f"00-{TRACE_ID}-b7ad6b7169203331-01"),)
SERVER = 2  # SpanKind.SERVER


@pytest.fixture(scope="module")
def idp() -> Iterator[DevIdentityProvider]:
    with running_idp() as provider:
        yield provider


def start(
    idp: DevIdentityProvider, receiver: OtlpReceiver, workdir: Path, **tracing: Any
) -> tuple[Process, int]:
    port = free_port()
    config = {
        "server": {"listen": f"127.0.0.1:{port}", "watch_config": False, "grace_period_s": 1},
        "admin": {"listen": None},
        "telemetry": {
            "service_name": "authz-tracing-options",
            "tracing": {
                "exporter": "otlp_http",
                "endpoint": f"http://127.0.0.1:{receiver.port}/v1/traces",
                **tracing,
            },
            "metrics": {"listen": None},
            "audit": {"enabled": False},
        },
        "jwt_providers": [
            {
                "name": "dev",
                "issuer": idp.issuer,
                "audiences": [idp.audience],
                "jwks_uri": idp.jwks_uri,
            }
        ],
        "policies": {"default": {"rules": [{"name": "any", "allow": "authenticated"}]}},
    }
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "authz.yaml"
    path.write_text(yaml.safe_dump(config))
    return start_authz(path, port, workdir), port


def check(port: int, token: str, metadata: tuple[tuple[str, str], ...] = ()) -> None:
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method, http.host, http.path = "GET", "api.local", "/orders"
    http.headers["authorization"] = f"Bearer {token}"
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        response = stub.Check(request, metadata=metadata, timeout=5)
    assert response.HasField("ok_response")


def test_otlp_http_export_with_a_hashed_principal(idp: DevIdentityProvider, tmp_path: Path) -> None:
    with running_otlp_http_receiver() as receiver:
        service, port = start(idp, receiver, tmp_path, hash_principal=True)
        try:
            check(port, idp.mint("alice"), SAMPLED_PARENT)
            spans = receiver.wait_for(
                lambda spans: any(s.trace_id == TRACE_ID and s.kind == SERVER for s in spans)
            )
        finally:
            service.stop()

    span = next(s for s in spans if s.trace_id == TRACE_ID and s.kind == SERVER)
    assert span.service_name == "authz-tracing-options"
    assert span.attributes["enduser.id"] == hashlib.sha256(b"alice").hexdigest()[:16]
    assert "alice" not in str(span.attributes)


def test_ratio_zero_records_only_what_envoy_sampled(
    idp: DevIdentityProvider, tmp_path: Path
) -> None:
    with running_otlp_http_receiver() as receiver:
        service, port = start(idp, receiver, tmp_path, sampling_ratio=0.0)
        try:
            token = idp.mint("bob")
            for _ in range(5):
                check(port, token)  # no parent: the ratio (0) decides
            check(port, token, SAMPLED_PARENT)  # Envoy sampled it: followed
            receiver.wait_for(lambda spans: any(s.kind == SERVER for s in spans))
        finally:
            service.stop()  # flushes whatever else was recorded
        spans = receiver.wait_for(lambda _: True)

    assert {s.trace_id for s in spans if s.kind == SERVER} == {TRACE_ID}
