"""A Decision -> what an API Gateway REQUEST authorizer returns. Pure functions, no I/O.

- Payload 1.0 (REST): an IAM policy document allowing or denying `execute-api:Invoke` on the
  method ARN, the `principalId`, and a `context` of strings that integrations read as
  `$context.authorizer.<key>`. A 401 is not a policy: the function fails with the message
  "Unauthorized", which API Gateway turns into its UNAUTHORIZED (401) gateway response.
- Payload 2.0 (HTTP APIs): with simple responses on, `{"isAuthorized", "context"}`; with them
  off, the same IAM policy format on the route ARN.

A Deny is a 403 (ACCESS_DENIED): API Gateway cannot answer 429 or 503 on an authorizer's
behalf, so the deny `context` carries `reason`, `status` and `retry_after` for gateway
response templates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from authz_service.errors import AuthorizerAnswer
from authz_service.services.response_policy import AllowResponse, DenyResponse

V2Format = Literal["simple", "iam"]

UNAUTHORIZED = "Unauthorized"  # the exact error message API Gateway maps to 401


class Unauthorized(AuthorizerAnswer):
    """Raised from the handler for a 401; its message must stay exactly "Unauthorized"."""

    reason = "authentication_required"
    outcome = "unauthenticated"
    grpc_status = "UNAUTHENTICATED"
    http_status = 401

    def __init__(self) -> None:
        super().__init__(UNAUTHORIZED)


def iam_policy(effect: Literal["Allow", "Deny"], resource: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
    }


def allow_context(allow: AllowResponse) -> dict[str, str]:
    """Dynamic metadata (principal, tier, roles, auth_method, policy, rule) and identity headers.

    Only non-empty strings: API Gateway refuses nested or null context values.
    """
    context = {key: value for key, value in allow.dynamic_metadata.items() if value}
    context.update({name: value for name, value in allow.headers_to_set.items() if value})
    return context


def deny_context(deny: DenyResponse) -> dict[str, str]:
    context = {"status": str(deny.status), "reason": deny.headers.get("x-authz-reason", "")}
    retry_after = deny.headers.get("retry-after")
    if retry_after:
        context["retry_after"] = retry_after
    return context


def allow_response(
    version: str, v2_format: V2Format, resource: str, principal: str, allow: AllowResponse
) -> dict[str, Any]:
    context = allow_context(allow)
    if version == "2.0" and v2_format == "simple":
        return {"isAuthorized": True, "context": context}
    return {
        "principalId": principal or "anonymous",
        "policyDocument": iam_policy("Allow", resource),
        "context": context,
    }


def deny_response(
    version: str, v2_format: V2Format, resource: str, deny: DenyResponse
) -> dict[str, Any]:
    context = deny_context(deny)
    if version == "2.0" and v2_format == "simple":
        return {"isAuthorized": False, "context": context}
    return {
        "principalId": "anonymous",
        "policyDocument": iam_policy("Deny", resource),
        "context": context,
    }


def context_from_text(text: str) -> Mapping[str, str]:
    """`policy=public,tenant=a` (the AUTHZ_CONTEXT variable) -> {"policy": "public", ...}."""
    pairs: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        if not item.strip():
            continue
        if not sep or not key:
            raise ValueError(f"AUTHZ_CONTEXT entry {item.strip()!r} is not key=value")
        pairs[key.strip()] = value.strip()
    return pairs
