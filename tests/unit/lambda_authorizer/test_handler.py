"""The Lambda handler end to end on the documented event shapes, with API-key credentials
(no network): IAM policies for payload 1.0, simple and IAM responses for payload 2.0."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from authz_service.lambda_authorizer import handler as lambda_handler
from authz_service.lambda_authorizer.responses import context_from_text
from tests.support.authz_config import api_key_hash, write_config

# Counts up to per-minute limits: never across a minute boundary.
pytestmark = pytest.mark.usefixtures("fresh_minute")

FIXTURES = Path(__file__).parent / "fixtures"
READER_KEY = "reader-key-for-tests"
ADMIN_KEY = "admin-key-for-tests"
REST_ARN = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/GET/api/orders"


def config_document() -> dict[str, Any]:
    return {
        "telemetry": {"metrics": {"listen": None}, "audit": {"enabled": True}},
        "admin": {"listen": None},
        "api_keys": {
            "header": "x-api-key",
            "keys": [
                {
                    "name": "reader",
                    "hash": api_key_hash(READER_KEY),
                    "principal": "svc:reader",
                    "roles": ["reader"],
                    "tier": "free",
                },
                {
                    "name": "admin",
                    "hash": api_key_hash(ADMIN_KEY),
                    "principal": "svc:admin",
                    "roles": ["admin"],
                },
            ],
        },
        "policy_selection": {"default": "public"},
        "policies": {
            "public": {
                "rules": [
                    {
                        "name": "docs",
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
            },
            "closed": {"rules": [{"name": "nothing", "deny": True}]},
        },
        "rate_limit": {
            "store": "memory",
            "brute_force": {"enabled": False},
            "domains": [
                {
                    "domain": "lambda",
                    "descriptors": [
                        {
                            "key": "user",
                            "value": "svc:admin",
                            "rate_limit": {"unit": "minute", "requests_per_unit": 2},
                        }
                    ],
                }
            ],
        },
        "check_quota": {
            "domain": "lambda",
            "descriptors": [{"entries": [{"key": "user", "source": "principal"}]}],
        },
    }


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = write_config(tmp_path / "authz.yaml", config_document())
    monkeypatch.setenv("AUTHZ_CONFIG", str(path))
    monkeypatch.delenv("AUTHZ_CONTEXT", raising=False)
    monkeypatch.delenv("AUTHZ_V2_RESPONSE", raising=False)
    forget_the_instance()
    yield path
    forget_the_instance()


def forget_the_instance() -> None:
    """A fresh Lambda instance: the handler's loop and authorizer closed and forgotten."""
    loop, authorizer = lambda_handler._loop, lambda_handler._authorizer
    if loop is not None:
        if authorizer is not None:
            loop.run_until_complete(authorizer.close())
        loop.close()
    lambda_handler._loop = lambda_handler._authorizer = None


def rest_event(path: str = "/api/orders", method: str = "GET", **headers: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((FIXTURES / "rest_request_v1.json").read_text())
    event["path"], event["httpMethod"] = path, method
    event["methodArn"] = f"arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/{method}{path}"
    for name, value in headers.items():
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    return event


def http_event(path: str = "/api/orders", **headers: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((FIXTURES / "http_api_request_v2.json").read_text())
    event["rawPath"] = "/prod" + path
    event["routeArn"] = f"arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/GET{path}"
    event["headers"].update(headers)
    return event


def statement(answer: dict[str, Any]) -> dict[str, Any]:
    (only,) = answer["policyDocument"]["Statement"]
    result: dict[str, Any] = only
    return result


def test_rest_allow_is_an_allow_policy_on_the_method_arn_with_identity_context(
    configured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = lambda_handler.handler(rest_event(**{"X-Api-Key": READER_KEY}), None)
    assert answer["principalId"] == "svc:reader"
    assert answer["policyDocument"]["Version"] == "2012-10-17"
    assert statement(answer) == {
        "Action": "execute-api:Invoke",
        "Effect": "Allow",
        "Resource": REST_ARN,
    }
    context = answer["context"]
    assert context["principal"] == "svc:reader"
    assert context["tier"] == "free"
    assert context["rule"] == "api"
    assert context["x-user-id"] == "svc:reader"
    assert all(isinstance(value, str) for value in context.values())
    audit = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert READER_KEY not in json.dumps(audit)


def test_rest_without_credentials_raises_unauthorized_for_a_401(configured: Path) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        lambda_handler.handler(rest_event(), None)


def test_rest_wrong_role_is_a_deny_policy_with_the_reason(configured: Path) -> None:
    event = rest_event("/admin/users", **{"X-Api-Key": READER_KEY})
    answer = lambda_handler.handler(event, None)
    assert statement(answer)["Effect"] == "Deny"
    assert statement(answer)["Resource"] == event["methodArn"]
    assert answer["context"] == {"status": "403", "reason": "missing_role"}


def test_anonymous_route_is_allowed_with_an_anonymous_principal(configured: Path) -> None:
    answer = lambda_handler.handler(rest_event("/public/readme"), None)
    assert statement(answer)["Effect"] == "Allow"
    assert answer["principalId"] == "anonymous"


@pytest.mark.parametrize("path", ["/public/..;/api/orders", "/public/%2e%2e;/api/orders"])
def test_a_dot_segment_with_parameters_is_a_bad_request_not_a_public_path(
    configured: Path, path: str
) -> None:
    # A Servlet container behind API Gateway reads /public/..;/api/orders as /api/orders.
    rest = lambda_handler.handler(rest_event(path), None)
    assert statement(rest)["Effect"] == "Deny"
    assert rest["context"] == {"status": "403", "reason": "bad_request"}
    http = lambda_handler.handler(http_event(path), None)
    assert http == {"isAuthorized": False, "context": {"status": "403", "reason": "bad_request"}}


def test_quota_past_the_limit_denies_with_rate_limited_reason(configured: Path) -> None:
    answers = [
        lambda_handler.handler(rest_event(**{"X-Api-Key": ADMIN_KEY}), None) for _ in range(3)
    ]
    assert [statement(a)["Effect"] for a in answers] == ["Allow", "Allow", "Deny"]
    context = answers[2]["context"]
    assert context["reason"] == "rate_limited"
    assert context["status"] == "429"
    assert int(context["retry_after"]) >= 1


def test_the_runtime_is_reused_across_invocations(configured: Path) -> None:
    lambda_handler.handler(rest_event("/public/x"), None)
    first = lambda_handler._authorizer
    lambda_handler.handler(rest_event("/public/x"), None)
    assert first is not None and lambda_handler._authorizer is first


def test_http_api_simple_response_allows_and_denies(configured: Path) -> None:
    allowed = lambda_handler.handler(http_event(**{"x-api-key": READER_KEY}), None)
    assert allowed["isAuthorized"] is True
    assert allowed["context"]["principal"] == "svc:reader"
    # No 401 for HTTP APIs from a Lambda: unauthenticated is isAuthorized false (403).
    anonymous = lambda_handler.handler(http_event(), None)
    assert anonymous == {
        "isAuthorized": False,
        "context": {"status": "401", "reason": "authentication_required"},
    }


def test_http_api_iam_format_when_configured(
    configured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHZ_V2_RESPONSE", "iam")
    event = http_event("/admin/users", **{"x-api-key": ADMIN_KEY})
    answer = lambda_handler.handler(event, None)
    assert answer["principalId"] == "svc:admin"
    assert statement(answer) == {
        "Action": "execute-api:Invoke",
        "Effect": "Allow",
        "Resource": event["routeArn"],
    }


def test_authz_context_selects_the_policy(
    configured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHZ_CONTEXT", "policy=closed")
    answer = lambda_handler.handler(rest_event("/public/x"), None)
    assert statement(answer)["Effect"] == "Deny"
    assert answer["context"]["reason"] == "denied_by_rule"


def test_unreadable_event_fails_closed_with_an_error(configured: Path) -> None:
    event = rest_event()
    event["methodArn"] = "arn:aws:s3:::not-an-api"
    with pytest.raises(lambda_handler.AuthorizerUnavailable):
        lambda_handler.handler(event, None)


def test_authz_context_text_is_parsed() -> None:
    assert context_from_text("policy=public, tenant=a") == {"policy": "public", "tenant": "a"}
    assert context_from_text("") == {}
    with pytest.raises(ValueError, match="key=value"):
        context_from_text("policy")


def test_unreadable_event_is_audited_as_a_refusal(
    configured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = rest_event()
    event["methodArn"] = "arn:aws:s3:::not-an-api"
    with pytest.raises(lambda_handler.AuthorizerUnavailable):
        lambda_handler.handler(event, None)
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["event"]["reason"] == "bad_request"
    assert line["authz"]["decision"] == "unavailable"
