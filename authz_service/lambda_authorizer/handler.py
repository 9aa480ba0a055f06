"""The AWS Lambda entry point: `authz_service.lambda_authorizer.handler.handler`.

The same config file and decision engine as the server: JWT/JWKS, API keys, RBAC, and quota
in Check (`check_quota`, with the Redis store so that every Lambda instance shares one
budget). One compiled config and one event loop per Lambda instance, built on the first invocation
and reused by the next ones (JWKS keys, verified tokens, Redis connections stay warm).

Environment:
    AUTHZ_CONFIG             path of the config file (default: config.yaml beside the code)
    AUTHZ_CONTEXT            the policy context, like Envoy's context_extensions:
                             "policy=public" (default: none, i.e. policy_selection.default)
    AUTHZ_V2_RESPONSE        "simple" (default) or "iam": must match the HTTP API authorizer's
                             enableSimpleResponses setting (payload 2.0 only)

JWKS keys are fetched on the first token with an unknown `kid` (at most once per
`min_refetch_interval_s`), not by a background task: a frozen Lambda runs none. The audit
line is written to stdout (CloudWatch Logs) before the handler returns.

Only the translation lives here (`LambdaTransport`); reading, deciding, reporting and
failing closed are services/check_use_case.py's, shared with the gRPC and HTTP transports.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any, TypeAlias, cast

from opentelemetry.trace import Span

from authz_service.authn.jwks_registry import JwksRegistry
from authz_service.config.loader import load_config_file
from authz_service.decisions import Decision, Outcome, RequestAttributes
from authz_service.errors import AuthorizerAnswer, RequestRefused
from authz_service.lambda_authorizer.events import (
    authorizer_request,
    parse_method_arn,
    payload_version,
    policy_resource,
)
from authz_service.lambda_authorizer.responses import (
    Unauthorized,
    V2Format,
    allow_response,
    context_from_text,
    deny_response,
)
from authz_service.schema import RequestLimits
from authz_service.services.check import CheckService
from authz_service.services.check_use_case import CheckUseCase, Metadata
from authz_service.services.compiled_config import CompiledConfig, QuotaStoreHolder, compile_config
from authz_service.services.sanitise import UNREADABLE_REQUEST
from authz_service.telemetry import tracing
from authz_service.telemetry.audit_log import AuditLog
from authz_service.telemetry.reporter import Reporter

SPAN_SERVICE = "authz_service.LambdaAuthorizer"
METRIC_LABEL = "LambdaAuthorizer"

Event: TypeAlias = Mapping[str, Any]
# What the handler returns, or raises: API Gateway reads a 401 and a 500 from an error.
Answer: TypeAlias = "dict[str, Any] | AuthorizerAnswer"


class AuthorizerUnavailable(AuthorizerAnswer):
    """The decision could not be made (fail closed): API Gateway answers 500."""


class LambdaTransport:
    """An authorizer event <-> core types, for services/check_use_case.py."""

    # No exporter is configured in a Lambda: its span is the no-op one.
    span_service = SPAN_SERVICE
    span_method = "authorize"
    span_attributes = None

    def __init__(self, context: Mapping[str, str], v2_format: V2Format) -> None:
        self._context = context
        self._v2_format = v2_format

    def metadata(self, context: None) -> Metadata | None:
        return None  # API Gateway passes no trace context to an authorizer

    def read(self, wire: Event, limits: RequestLimits) -> RequestAttributes:
        request = authorizer_request(wire, self._context)
        if request.version == "1.0":
            parse_method_arn(request.resource_arn)
        return request.attributes

    def refused(self, wire: Event, error: RequestRefused) -> RequestAttributes:
        return UNREADABLE_REQUEST

    def answer(
        self,
        wire: Event,
        decision: Decision,
        compiled: CompiledConfig,
        request: RequestAttributes,
    ) -> Answer:
        if decision.outcome is Outcome.UNAVAILABLE:
            return AuthorizerUnavailable(f"{decision.reason.value}: {decision.message}")
        version, resource = payload_version(wire), policy_resource(wire)
        if decision.allowed:
            allow = compiled.responses.allow(decision)
            principal = decision.identity.principal if decision.identity else ""
            return allow_response(version, self._v2_format, resource, principal, allow)
        if decision.outcome is Outcome.UNAUTHENTICATED and version == "1.0":
            return Unauthorized()
        deny = compiled.responses.deny(decision)
        return deny_response(version, self._v2_format, resource, deny)

    def describe(self, span: Span, answer: Answer) -> None:
        return None


class LambdaAuthorizer:
    def __init__(
        self,
        config_path: str,
        context: Mapping[str, str] | None = None,
        v2_format: V2Format = "simple",
    ) -> None:
        loaded = load_config_file(config_path)
        self.config = loaded.config
        tracing.set_principal_hashing(self.config.telemetry.tracing.hash_principal)
        self.registry = JwksRegistry()
        self.stores = QuotaStoreHolder()
        compiled = compile_config(loaded, self.registry, self.stores)
        self.compiled_config = compiled
        self.checks = CheckService(lambda: compiled)
        # The audit line goes to stdout (CloudWatch Logs) before the handler returns.
        audit = self.config.telemetry.audit.model_copy(update={"output": "stdout"})
        self.reporter = Reporter(self.config.telemetry, audit=AuditLog(audit, synchronous=True))
        self._use_case = CheckUseCase(self.checks, self.reporter, METRIC_LABEL)
        self._transport = LambdaTransport(dict(context or {}), v2_format)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> LambdaAuthorizer:
        v2_format = environ.get("AUTHZ_V2_RESPONSE", "simple")
        if v2_format not in ("simple", "iam"):
            raise ValueError(f"AUTHZ_V2_RESPONSE must be simple or iam, not {v2_format!r}")
        return cls(
            environ.get("AUTHZ_CONFIG", "config.yaml"),
            context_from_text(environ.get("AUTHZ_CONTEXT", "")),
            cast(V2Format, v2_format),
        )

    async def authorize(self, event: Event) -> dict[str, Any]:
        """The authorizer's answer; raises Unauthorized (401) or AuthorizerUnavailable (500)."""
        answer = await self._use_case.check(self._transport, event, None)
        if isinstance(answer, AuthorizerAnswer):
            raise answer
        return answer

    async def close(self) -> None:
        await self.registry.close()
        await self.stores.close()
        self.reporter.close()


_loop: asyncio.AbstractEventLoop | None = None
_authorizer: LambdaAuthorizer | None = None


def handler(event: dict[str, Any], _context: object = None) -> dict[str, Any]:
    """What Lambda calls. The compiled config and loop live as long as the Lambda instance."""
    global _loop, _authorizer
    if _loop is None:
        _loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_loop)
    if _authorizer is None:
        _authorizer = LambdaAuthorizer.from_environment(os.environ)
    return _loop.run_until_complete(_authorizer.authorize(event))
