"""The three transports report through one path: a request each refuses unread (not
parseable, too large, shed) is counted under the same decision metric and written as the
same audit line shape, whatever its wire format. In process: the gRPC servicer, the HTTP
check handler (aiohttp's mocked requests) and the Lambda authorizer over one config."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from envoy.service.auth.v3 import external_auth_pb2
from multidict import CIMultiDict

from authz_service.authn.jwks_registry import JwksRegistry
from authz_service.config.loader import load_config_file
from authz_service.grpc.authorization_servicer import AuthorizationServicer
from authz_service.http.check_endpoint import HttpCheckHandler
from authz_service.lambda_authorizer.events import UnreadableEvent
from authz_service.lambda_authorizer.handler import AuthorizerUnavailable, LambdaAuthorizer
from authz_service.schema import HttpCheckSettings
from authz_service.services.check import CheckService
from authz_service.services.compiled_config import QuotaStoreHolder, compile_config
from authz_service.telemetry.audit_log import AuditLog
from authz_service.telemetry.metrics import Metrics
from authz_service.telemetry.reporter import Reporter
from tests.support.authz_config import api_key_hash, write_config

MAX_HEADERS = 10


class Context:
    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()


def config_document() -> dict[str, Any]:
    return {
        "admin": {"listen": None},
        "telemetry": {"metrics": {"listen": None}, "audit": {"enabled": True}},
        "request_limits": {"max_headers": MAX_HEADERS},
        "api_keys": {
            "header": "x-api-key",
            "keys": [{"name": "k", "hash": api_key_hash("key"), "principal": "svc:k"}],
        },
        "policy_selection": {"default": "main"},
        "policies": {"main": {"rules": [{"name": "api", "allow": "authenticated"}]}},
    }


class Transports:
    """The gRPC and HTTP transports over one Reporter (audit lines written at once)."""

    def __init__(self, config_path: Path, audit_path: Path) -> None:
        self.config_path = config_path
        loaded = load_config_file(config_path)
        compiled = compile_config(loaded, JwksRegistry(), QuotaStoreHolder())
        self.metrics = Metrics()
        audit = loaded.config.telemetry.audit.model_copy(update={"output": str(audit_path)})
        self.reporter = Reporter(
            loaded.config.telemetry, self.metrics, AuditLog(audit, synchronous=True)
        )
        checks = CheckService(lambda: compiled)
        self.grpc = AuthorizationServicer(checks, self.reporter)
        self.http = HttpCheckHandler(HttpCheckSettings(), checks, self.reporter)
        self.audit_path = audit_path

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]

    def counted(self, decision: str, reason: str) -> float:
        labels = {"decision": decision, "reason": reason, "policy": "-"}
        value = self.metrics.registry.get_sample_value("authz_check_decisions_total", labels)
        return value or 0.0


@pytest.fixture
def transports(tmp_path: Path) -> Iterator[Transports]:
    built = Transports(write_config(tmp_path / "authz.yaml", config_document()), tmp_path / "a")
    yield built
    built.reporter.close()


def shape(line: dict[str, Any], prefix: str = "") -> set[str]:
    """The line's key paths, without values (times, ids and durations differ)."""
    keys: set[str] = set()
    for key, value in line.items():
        path = f"{prefix}{key}"
        keys |= shape(value, path + ".") if isinstance(value, dict) else {path}
    return keys


def what(line: dict[str, Any]) -> tuple[str, str, int]:
    return line["event"]["reason"], line["authz"]["decision"], line["authz"]["http_status"]


def too_many_headers() -> dict[str, str]:
    return {f"x-filler-{n}": "y" for n in range(MAX_HEADERS + 1)}


async def test_unreadable_requests_report_alike_on_every_transport(
    transports: Transports, capsys: pytest.CaptureFixture[str]
) -> None:
    # gRPC: bytes that are no CheckRequest reach the servicer as None.
    await transports.grpc.Check(None, Context())
    # HTTP: an nginx subrequest without X-Original-URI and X-Original-Method.
    await transports.http.handle(make_mocked_request("GET", "/nginx"))
    grpc_line, http_line = transports.lines()
    # Lambda: an event that is not a REQUEST authorizer's (its audit line goes to stdout).
    authorizer = LambdaAuthorizer(str(transports.config_path))
    capsys.readouterr()
    try:
        with pytest.raises(AuthorizerUnavailable):
            await authorizer.authorize({"type": "TOKEN"})
    finally:
        await authorizer.close()
    lambda_line = json.loads(capsys.readouterr().out)

    assert shape(grpc_line) == shape(http_line) == shape(lambda_line)
    assert what(grpc_line) == what(http_line) == ("bad_request", "forbidden", 403)
    # The Lambda fails the invocation instead (API Gateway then answers 500): unavailable.
    assert what(lambda_line) == ("bad_request", UnreadableEvent.outcome, 503)
    assert transports.counted("forbidden", "bad_request") == 2


async def test_too_large_requests_report_alike_on_both_check_ports(
    transports: Transports,
) -> None:
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method, http.host, http.path = "GET", "api.example.com", "/api/orders"
    http.headers.update(too_many_headers())
    headers = CIMultiDict({"host": "api.example.com", **too_many_headers()})

    answer = await transports.grpc.Check(request, Context())
    reply = await transports.http.handle(
        make_mocked_request("GET", "/envoy/api/orders", headers=headers)
    )
    grpc_line, http_line = transports.lines()

    assert answer.denied_response.status.code == reply.status == 431
    assert shape(grpc_line) == shape(http_line)
    assert what(grpc_line) == what(http_line) == ("request_too_large", "forbidden", 431)
    # The head as each received it, untranslated: the HTTP subrequest's target has the mount.
    assert grpc_line["url"] == {"domain": "api.example.com", "path": "/api/orders"}
    assert http_line["url"] == {"domain": "api.example.com", "path": "/envoy/api/orders"}
    assert transports.counted("forbidden", "request_too_large") == 2


async def test_a_decided_request_reports_alike_on_both_check_ports(
    transports: Transports,
) -> None:
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method, http.host, http.path = "GET", "api.example.com", "/api/orders"
    http.headers["x-api-key"] = "key"
    headers = CIMultiDict({"host": "api.example.com", "x-api-key": "key"})

    await transports.grpc.Check(request, Context())
    await transports.http.handle(make_mocked_request("GET", "/envoy/api/orders", headers=headers))
    grpc_line, http_line = transports.lines()

    assert shape(grpc_line) == shape(http_line)
    assert what(grpc_line) == what(http_line) == ("allowed", "allow", 200)
    assert grpc_line["user"] == http_line["user"] == {"id": "svc:k"}
