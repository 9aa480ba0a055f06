"""Blue-green/canary routing and the access log of envoy/envoy.yaml, through a real Envoy."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest

from tests.e2e.conftest import Gateway, Stack
from tests.e2e.gateway import access_log

pytestmark = pytest.mark.envoy


@pytest.fixture
def stack(gateway: Gateway) -> Stack:
    """The shared gateway stack (its spy answers OK): one set of processes for these modules."""
    return gateway.stack


def bearer(stack: Stack) -> dict[str, str]:
    return {"authorization": f"Bearer {stack.idp.mint('alice', roles=['editor'])}"}


def test_the_canary_header_always_reaches_the_new_version(stack: Stack) -> None:
    headers = {**bearer(stack), "x-canary": "true"}
    with stack.client() as client:
        versions = {
            client.get(stack.public_url + "/api/orders", headers=headers).json()["version"]
            for _ in range(10)
        }

    assert versions == {"v2"}


def test_other_requests_are_split_90_10(stack: Stack) -> None:
    headers = bearer(stack)
    with stack.client() as client:
        versions = Counter(
            client.get(stack.public_url + "/api/orders", headers=headers).json()["version"]
            for _ in range(200)
        )

    assert versions["v1"] + versions["v2"] == 200
    # Expected 20 on v2 (binomial, sd 4.2): the bounds are far out, so this never flakes.
    assert 4 <= versions["v2"] <= 45, versions


def test_other_routes_stay_on_the_stable_version(stack: Stack) -> None:
    with stack.client() as client:
        response = client.get(
            stack.public_url + "/admin/users",
            headers={
                "authorization": f"Bearer {stack.idp.mint('root', roles=['admin'])}",
                "x-canary": "true",
            },
        )

    assert response.json()["version"] == "v1"


def entry_for(stack: Stack, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for entry in access_log(stack.envoy.log()):
            if entry["request_id"] == request_id:
                return entry
        time.sleep(0.05)
    raise AssertionError(f"no access-log line for {request_id}")


def test_the_access_log_records_request_id_decision_and_version(stack: Stack) -> None:
    with stack.client() as client:
        allowed = client.get(
            stack.public_url + "/api/orders", headers={**bearer(stack), "x-canary": "true"}
        )
        denied = client.get(stack.public_url + "/admin/users", headers=bearer(stack))

    allowed_entry = entry_for(stack, allowed.headers["x-request-id"])
    denied_entry = entry_for(stack, denied.headers["x-request-id"])

    assert allowed_entry["request_id"] == allowed.json()["headers"]["x-request-id"]
    assert allowed_entry["status"] == 200
    assert allowed_entry["route"] == "api-canary"
    assert allowed_entry["upstream_cluster"] == "upstream_v2"
    assert allowed_entry["principal"] == "alice"
    assert allowed_entry["tls"].startswith("TLSv1.")
    assert denied.status_code == 403
    assert denied_entry["status"] == 403
    assert denied_entry["authz_reason"] == denied.headers["x-authz-reason"]
    assert "UAEX" in denied_entry["flags"]
    # Credentials never reach the log.
    assert "Bearer" not in stack.envoy.log()
    # The service's audit line carries the same request id as Envoy's access log.
    audit = audit_entry_for(stack, denied.headers["x-request-id"])
    assert (audit["authz"]["decision"], audit["event"]["reason"]) == (
        "forbidden",
        denied.headers["x-authz-reason"],
    )


def audit_entry_for(stack: Stack, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in stack.authz.log().splitlines():
            if line.startswith("{") and request_id in line:
                entry: dict[str, Any] = json.loads(line)
                if entry.get("http", {}).get("request", {}).get("id") == request_id:
                    return entry
        time.sleep(0.05)
    raise AssertionError(f"no audit line for {request_id}")
