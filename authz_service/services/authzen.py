"""The OpenID AuthZEN Authorization API 1.0 access evaluation, independent of the HTTP server.

A PEP asks "may this subject do this action on this resource, in this context?" and gets
`{"decision": true|false}`. The question is decided by the same pipeline as a gateway check
(`CheckUseCase.check`: metrics, span and audit line included), read as an HTTP request:

- action -> method: `action.properties.method`, else the action's name when it is an HTTP
  method, else `http_check.authzen.actions` (can_read -> GET...); an unknown action is denied.
- resource -> host and path: `resource.properties.path` (and `.host`), else
  `/<type>/<id>` on `http_check.authzen.default_host`.
- subject -> identity: only a credential makes one. `subject.properties.token` is verified
  like a bearer token, `subject.properties.api_key` like the API key header; without either
  the subject is anonymous. `subject.id` is never trusted: when a credential is given, the
  verified principal must equal it, or the answer is false (`subject_mismatch`).
- context: its string values are the check's context (e.g. `{"policy": "internal"}` picks a
  policy, as Envoy's context_extensions do); `source_address` names the client.

Malformed requests are 400; every decision, deny included, is a 200 (the spec's rule).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Span
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from authz_service.decisions import Decision, RequestAttributes
from authz_service.errors import RequestRefused, UnreadableRequest
from authz_service.schema import RequestLimits
from authz_service.schema.http_check import AuthzenSettings
from authz_service.services.check_use_case import CheckUseCase, Metadata
from authz_service.services.compiled_config import CompiledConfig
from authz_service.services.sanitise import unreadable_request

EVALUATION_PATH = "/access/v1/evaluation"
METADATA_PATH = "/.well-known/authzen-configuration"
MAX_BODY_BYTES = 64 * 1024
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _Entity(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    type: str = Field(min_length=1)
    id: str = Field(min_length=1)
    properties: dict[str, Any] = Field(default_factory=dict)


class _Action(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1)
    properties: dict[str, Any] = Field(default_factory=dict)


class AccessEvaluation(BaseModel):
    """The Access Evaluation Request (spec section 6.1)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    subject: _Entity
    action: _Action
    resource: _Entity
    context: dict[str, Any] = Field(default_factory=dict)


class BadEvaluation(UnreadableRequest):
    """A body that is no Access Evaluation Request: answered 400, nothing decided."""

    grpc_status = "INVALID_ARGUMENT"
    http_status = 400


@dataclass(frozen=True, slots=True)
class Evaluated:
    """A parsed request and what the HTTP request around it says."""

    evaluation: AccessEvaluation
    request_id: str
    peer: str
    traceparent: str


@dataclass(frozen=True, slots=True)
class EvaluationReply:
    status: int
    body: dict[str, Any]


def parse_evaluation(body: bytes) -> AccessEvaluation:
    if len(body) > MAX_BODY_BYTES:
        raise BadEvaluation(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        return AccessEvaluation.model_validate(json.loads(body))
    except (ValueError, ValidationError) as error:
        first = error.errors()[0] if isinstance(error, ValidationError) else None
        if first is not None:
            where = ".".join(str(part) for part in first["loc"])
            raise BadEvaluation(f"{where}: {first['msg']}") from None
        raise BadEvaluation("the body is not JSON") from None


def _method(action: _Action, settings: AuthzenSettings) -> str:
    declared = action.properties.get("method")
    if isinstance(declared, str) and declared.upper() in _HTTP_METHODS:
        return declared.upper()
    if action.name.upper() in _HTTP_METHODS:
        return action.name.upper()
    mapped = settings.actions.get(action.name)
    if mapped is None:
        raise UnreadableRequest(f"action {action.name!r} maps to no HTTP method")
    return mapped


def to_request(
    wire: Evaluated, settings: AuthzenSettings, api_key_header: str
) -> RequestAttributes:
    """The evaluation as the policy reads it (see the module docstring)."""
    evaluation = wire.evaluation
    resource = evaluation.resource
    path = resource.properties.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        path = f"/{resource.type}/{resource.id}"
    host = resource.properties.get("host")
    headers: dict[str, str] = {}
    subject = evaluation.subject.properties
    token, api_key = subject.get("token"), subject.get("api_key")
    if isinstance(token, str) and token:
        headers["authorization"] = f"Bearer {token}"
    if isinstance(api_key, str) and api_key:
        headers[api_key_header] = api_key
    context = {k: v for k, v in evaluation.context.items() if isinstance(v, str)}
    source = context.pop("source_address", "") or wire.peer
    return RequestAttributes(
        method=_method(evaluation.action, settings),
        host=host if isinstance(host, str) and host else settings.default_host,
        path=path,
        headers=headers,
        source_address=source,
        context=context,
        request_id=wire.request_id,
    )


def to_reply(wire: Evaluated, decision: Decision, request: RequestAttributes) -> EvaluationReply:
    """The Access Evaluation Response (spec section 6.2): a decision, and why in `context`."""
    allowed = decision.allowed
    reason = decision.reason.value
    subject = wire.evaluation.subject
    identity = decision.identity
    message = decision.message
    # Only the credential's headers are set: with one, the decision is about its principal.
    if allowed and request.headers and (identity is None or identity.principal != subject.id):
        allowed, reason, message = False, "subject_mismatch", "subject.id is not the principal"
    context: dict[str, Any] = {"reason": reason, "policy": decision.policy, "rule": decision.rule}
    if not allowed:
        context["reason_admin"] = {"en": message}
    return EvaluationReply(200, {"decision": allowed, "context": context})


class AuthzenTransport:
    """AuthZEN <-> core types, for services/check_use_case.py (a CheckTransport)."""

    span_service = "authz_service.AuthZEN"
    span_method = "AccessEvaluation"
    span_attributes = {"rpc.system": "http"}

    def __init__(self, settings: AuthzenSettings, api_key_header: Callable[[], str]) -> None:
        """`api_key_header`: the current config's API key header (it reloads)."""
        self.settings = settings
        self._api_key_header = api_key_header

    def metadata(self, context: Evaluated) -> Metadata | None:
        return [("traceparent", context.traceparent)] if context.traceparent else None

    def read(self, wire: Evaluated, limits: RequestLimits) -> RequestAttributes:
        return to_request(wire, self.settings, self._api_key_header())

    def refused(self, wire: Evaluated, error: RequestRefused) -> RequestAttributes:
        return unreadable_request(wire.request_id)

    def answer(
        self,
        wire: Evaluated,
        decision: Decision,
        compiled: CompiledConfig,
        request: RequestAttributes,
    ) -> EvaluationReply:
        return to_reply(wire, decision, request)

    def describe(self, span: Span, answer: EvaluationReply) -> None:
        span.set_attribute("authzen.decision", bool(answer.body.get("decision")))


class AccessEvaluationUseCase:
    """`POST /access/v1/evaluation`, whatever serves HTTP: body in, status and JSON out."""

    def __init__(self, checks: CheckUseCase, transport: AuthzenTransport) -> None:
        self._checks = checks
        self.transport = transport

    async def evaluate(self, body: bytes, headers: Mapping[str, str], peer: str) -> EvaluationReply:
        try:
            evaluation = parse_evaluation(body)
        except BadEvaluation as error:
            return EvaluationReply(
                400, {"error": "invalid_request", "error_description": str(error)}
            )
        wire = Evaluated(
            evaluation,
            headers.get("x-request-id", "")[:128],
            peer,
            headers.get("traceparent", ""),
        )
        return await self._checks.check(self.transport, wire, wire)


def metadata_document(base_url: str) -> dict[str, str]:
    """The PDP metadata (`/.well-known/authzen-configuration`)."""
    return {
        "policy_decision_point": base_url,
        "access_evaluation_endpoint": base_url + EVALUATION_PATH,
    }
