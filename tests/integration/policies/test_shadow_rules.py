"""A shadow rule in a real service: decided on every request, recorded in the audit line, the
shadow metric and the server span, and never enforced."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from authz_service.server import AuthzServer
from tests.integration.grpc.conftest import service_config
from tests.integration.telemetry.test_tracing_options import SAMPLED_PARENT, SERVER, TRACE_ID
from tests.integration.telemetry.test_tracing_options import check as grpc_check
from tests.support.authz_config import write_config
from tests.support.authz_server import running_server
from tests.support.idp import running_idp
from tests.support.otlp import running_otlp_http_receiver
from tools.dev_idp import DevIdentityProvider
from tools.processes import free_port, start_authz

ADMINS_ONLY_SOON = {
    "name": "admins-only-soon",
    "match": {"paths": [{"prefix": "/api/"}, {"exact": "/orders"}]},
    "allow": {"roles_any": ["admin"]},
    "mode": "shadow",
}


@pytest.fixture(scope="module")
def idp() -> Iterator[DevIdentityProvider]:
    with running_idp() as provider:
        yield provider


def shadowed_config(idp: DevIdentityProvider, audit_path: Path) -> dict[str, Any]:
    config = service_config(idp, watch=False)
    config["telemetry"] = {"metrics": {"listen": None}, "audit": {"output": str(audit_path)}}
    config["http_check"] = {"listen": "127.0.0.1:0"}
    config["policies"]["public"]["rules"].insert(0, ADMINS_ONLY_SOON)
    return config


def shadow_count(server: AuthzServer, **labels: str) -> float:
    value = server.metrics.registry.get_sample_value("authz_shadow_decisions_total", labels)
    return value or 0.0


async def test_a_shadow_rule_is_recorded_in_audit_and_metric_but_not_enforced(
    tmp_path: Path, idp: DevIdentityProvider
) -> None:
    audit_path = tmp_path / "audit.jsonl"
    path = write_config(tmp_path / "authz.yaml", shadowed_config(idp, audit_path))
    token = idp.mint("rita", roles=["reader"])
    async with running_server(path) as server:
        assert server.http_check is not None
        url = f"http://127.0.0.1:{server.http_check.port}/envoy/api/orders"
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(url, headers={"authorization": f"Bearer {token}"})
        disagreeing = shadow_count(
            server,
            policy="public",
            rule="admins-only-soon",
            decision="forbidden",
            agrees="false",
        )

    assert response.status_code == 200, response.text  # enforced: rule `api` allows
    assert disagreeing == 1
    (line,) = [json.loads(text) for text in audit_path.read_text().splitlines()]
    assert line["authz"]["decision"] == "allow" and line["authz"]["rule"] == "api"
    assert line["authz"]["shadow"] == {
        "decision": "forbidden",
        "reason": "missing_role",
        "rule": "admins-only-soon",
        "policy": "public",
    }


def test_the_server_span_carries_the_shadow_decision(
    idp: DevIdentityProvider, tmp_path: Path
) -> None:
    port = free_port()
    config = {
        "server": {"listen": f"127.0.0.1:{port}", "watch_config": False, "grace_period_s": 1},
        "admin": {"listen": None},
        "jwt_providers": [
            {
                "name": "dev",
                "issuer": idp.issuer,
                "audiences": [idp.audience],
                "jwks_uri": idp.jwks_uri,
                "roles_claims": ["realm_access.roles"],
            }
        ],
        "policies": {
            "default": {"rules": [ADMINS_ONLY_SOON, {"name": "any", "allow": "authenticated"}]}
        },
    }
    with running_otlp_http_receiver() as receiver:
        config["telemetry"] = {
            "tracing": {
                "exporter": "otlp_http",
                "endpoint": f"http://127.0.0.1:{receiver.port}/v1/traces",
            },
            "metrics": {"listen": None},
            "audit": {"enabled": False},
        }
        path = tmp_path / "authz.yaml"
        path.write_text(yaml.safe_dump(config))
        service = start_authz(path, port, tmp_path)
        try:
            grpc_check(port, idp.mint("rita", roles=["reader"]), SAMPLED_PARENT)
            spans = receiver.wait_for(
                lambda spans: any(s.trace_id == TRACE_ID and s.kind == SERVER for s in spans)
            )
        finally:
            service.stop()

    span = next(s for s in spans if s.trace_id == TRACE_ID and s.kind == SERVER)
    assert span.attributes["authz.decision"] == "allow"
    assert span.attributes["authz.shadow.decision"] == "forbidden"
    assert span.attributes["authz.shadow.rule"] == "admins-only-soon"
    assert span.attributes["authz.shadow.agrees"] is False
