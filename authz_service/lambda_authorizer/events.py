"""API Gateway REQUEST authorizer events -> RequestAttributes. Pure functions, no I/O.

Two shapes (AWS API Gateway developer guide, "Lambda authorizer input"):

- Payload 1.0 (REST APIs, and HTTP APIs configured with 1.0): `type: REQUEST`, `methodArn`,
  `httpMethod`, `path` (without the stage), `headers` / `multiValueHeaders`,
  `queryStringParameters` / `multiValueQueryStringParameters`, and `requestContext` with
  `identity.sourceIp`, `requestId`, `domainName`.
- Payload 2.0 (HTTP APIs): `version: "2.0"`, `routeArn`, `rawPath`, `rawQueryString`,
  `headers` (lower-case, repeats comma-joined), `cookies` (apart from the headers), and
  `requestContext.http` with `method`, `sourceIp`, plus `requestId`, `domainName`, `stage`.

Everything here was set by API Gateway, not forwarded by another proxy: `sourceIp` is the
address API Gateway saw.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from authz_service.decisions import RequestAttributes
from authz_service.errors import UnreadableRequest

PayloadVersion = Literal["1.0", "2.0"]


class UnreadableEvent(UnreadableRequest):
    """Not an API Gateway REQUEST authorizer event we understand: the authorizer fails (500),
    which is how API Gateway learns that nothing could be decided."""

    outcome = "unavailable"
    grpc_status = "UNKNOWN"
    http_status = 500


@dataclass(frozen=True, slots=True)
class AuthorizerRequest:
    version: PayloadVersion
    attributes: RequestAttributes
    # The policy resource: methodArn (1.0) or routeArn (2.0).
    resource_arn: str


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _v1_headers(event: Mapping[str, Any]) -> dict[str, str]:
    multi = _mapping(event.get("multiValueHeaders"))
    headers: dict[str, str] = {}
    if multi:
        for name, values in multi.items():
            if isinstance(values, list):
                joiner = "; " if name.lower() == "cookie" else ", "
                headers[name.lower()] = joiner.join(str(v) for v in values)
        return headers
    for name, value in _mapping(event.get("headers")).items():
        if isinstance(value, str):
            headers[name.lower()] = value
    return headers


def _v1_query(event: Mapping[str, Any]) -> str:
    multi = _mapping(event.get("multiValueQueryStringParameters"))
    if multi:
        pairs = [
            (name, value)
            for name, values in multi.items()
            if isinstance(values, list)
            for value in values
        ]
    else:
        pairs = list(_mapping(event.get("queryStringParameters")).items())
    return urllib.parse.urlencode([(str(k), str(v)) for k, v in pairs])


def payload_version(event: Mapping[str, Any]) -> PayloadVersion:
    return "2.0" if _mapping(event).get("version") == "2.0" else "1.0"


def policy_resource(event: Mapping[str, Any]) -> str:
    """What the returned policy names: methodArn (1.0; routeArn as a fallback) or routeArn."""
    event = _mapping(event)
    if payload_version(event) == "2.0":
        return _text(event.get("routeArn"))
    return _text(event.get("methodArn")) or _text(event.get("routeArn"))


def _require(value: str, what: str) -> str:
    if not value:
        raise UnreadableEvent(f"event has no {what}")
    return value


def _v1(event: Mapping[str, Any], context: Mapping[str, str]) -> AuthorizerRequest:
    request_context = _mapping(event.get("requestContext"))
    headers = _v1_headers(event)
    path = _require(_text(event.get("path")), "path")
    query = _v1_query(event)
    return AuthorizerRequest(
        version="1.0",
        attributes=RequestAttributes(
            method=_require(_text(event.get("httpMethod")), "httpMethod").upper(),
            host=headers.get("host") or _text(request_context.get("domainName")),
            path=path + (f"?{query}" if query else ""),
            headers=headers,
            source_address=_text(_mapping(request_context.get("identity")).get("sourceIp")),
            context=context,
            request_id=_text(request_context.get("requestId")),
        ),
        resource_arn=_require(policy_resource(event), "methodArn"),
    )


def _v2_path(raw_path: str, stage: str) -> str:
    # HTTP APIs put a named stage in rawPath ("/prod/orders"); policies see "/orders".
    prefix = f"/{stage}"
    if stage and stage != "$default" and (raw_path == prefix or raw_path.startswith(prefix + "/")):
        return raw_path[len(prefix) :] or "/"
    return raw_path


def _v2(event: Mapping[str, Any], context: Mapping[str, str]) -> AuthorizerRequest:
    request_context = _mapping(event.get("requestContext"))
    http = _mapping(request_context.get("http"))
    headers = {
        str(name).lower(): value
        for name, value in _mapping(event.get("headers")).items()
        if isinstance(value, str)
    }
    cookies = [c for c in event.get("cookies") or [] if isinstance(c, str)]
    if cookies:
        headers["cookie"] = "; ".join(cookies)
    raw_path = _require(_text(event.get("rawPath")) or _text(http.get("path")), "rawPath")
    path = _v2_path(raw_path, _text(request_context.get("stage")))
    query = _text(event.get("rawQueryString"))
    return AuthorizerRequest(
        version="2.0",
        attributes=RequestAttributes(
            method=_require(_text(http.get("method")), "requestContext.http.method").upper(),
            host=headers.get("host") or _text(request_context.get("domainName")),
            path=path + (f"?{query}" if query else ""),
            headers=headers,
            source_address=_text(http.get("sourceIp")),
            context=context,
            request_id=_text(request_context.get("requestId")),
        ),
        resource_arn=_require(policy_resource(event), "routeArn"),
    )


def authorizer_request(
    event: Mapping[str, Any], context: Mapping[str, str] | None = None
) -> AuthorizerRequest:
    """Read a REQUEST authorizer event of either payload version.

    `context` plays the part of Envoy's context_extensions (e.g. {"policy": "public"}).
    """
    if not isinstance(event, Mapping):
        raise UnreadableEvent("event is not a JSON object")
    if event.get("type") != "REQUEST":
        raise UnreadableEvent("only REQUEST authorizers are supported (not TOKEN)")
    if payload_version(event) == "2.0":
        return _v2(event, dict(context or {}))
    return _v1(event, dict(context or {}))


@dataclass(frozen=True, slots=True)
class MethodArn:
    """arn:aws:execute-api:{region}:{account}:{api_id}/{stage}/{method}/{resource path}."""

    prefix: str  # arn:aws:execute-api:{region}:{account}
    api_id: str
    stage: str
    method: str
    resource: str


def parse_method_arn(arn: str) -> MethodArn:
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "execute-api":
        raise UnreadableEvent("methodArn is not an execute-api ARN")
    api_id, _, rest = parts[5].partition("/")
    stage, _, rest = rest.partition("/")
    method, _, resource = rest.partition("/")
    if not (api_id and stage and method):
        raise UnreadableEvent("methodArn lacks the API id, stage or method")
    return MethodArn(":".join(parts[:5]), api_id, stage, method, resource)
