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
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, cast

from authz_service.authn.jwks_registry import JwksRegistry
from authz_service.config.loader import load_config_file
from authz_service.decisions import Decision, Outcome, Reason, RequestAttributes
from authz_service.errors import AuthorizerAnswer
from authz_service.lambda_authorizer.events import (
    UnreadableEvent,
    authorizer_request,
    parse_method_arn,
)
from authz_service.lambda_authorizer.responses import (
    Unauthorized,
    V2Format,
    allow_response,
    context_from_text,
    deny_response,
)
from authz_service.services.check import CheckService
from authz_service.services.compiled_config import QuotaStoreHolder, compile_config
from authz_service.telemetry import tracing
from authz_service.telemetry.audit import audit_line
from authz_service.telemetry.reporter import UNREADABLE_REQUEST

log = logging.getLogger(__name__)


class AuthorizerUnavailable(AuthorizerAnswer):
    """The decision could not be made (fail closed): API Gateway answers 500."""


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
        self.context = dict(context or {})
        self.v2_format = v2_format

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

    async def authorize(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The authorizer's answer; raises Unauthorized (401) or AuthorizerUnavailable (500)."""
        started = time.perf_counter()
        try:
            request = authorizer_request(event, self.context)
            if request.version == "1.0":
                parse_method_arn(request.resource_arn)
        except UnreadableEvent as error:
            log.warning("unreadable authorizer event (%s); failing closed", error)
            refused = Decision(Outcome.UNAVAILABLE, Reason.BAD_REQUEST, "event could not be read")
            self._audit(UNREADABLE_REQUEST, refused, time.perf_counter() - started)
            raise AuthorizerUnavailable(str(error)) from None
        decision, compiled = await self.checks.check(request.attributes)
        self._audit(request.attributes, decision, time.perf_counter() - started)
        version, resource = request.version, request.resource_arn
        if decision.allowed:
            allow = compiled.responses.allow(decision)
            principal = decision.identity.principal if decision.identity else ""
            return allow_response(version, self.v2_format, resource, principal, allow)
        if decision.outcome is Outcome.UNAVAILABLE:
            raise AuthorizerUnavailable(decision.reason.value)
        if decision.outcome is Outcome.UNAUTHENTICATED and version == "1.0":
            raise Unauthorized
        return deny_response(version, self.v2_format, resource, compiled.responses.deny(decision))

    def _audit(self, request: RequestAttributes, decision: Decision, duration_s: float) -> None:
        """The line the server writes for the same decision (principal hashed alike)."""
        if not self.config.telemetry.audit.enabled:
            return
        identity = decision.identity
        principal = tracing.principal_attribute(identity.principal) if identity else None
        line = audit_line(request, decision, duration_s=duration_s, principal=principal)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    async def close(self) -> None:
        await self.registry.close()
        await self.stores.close()


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


def reset() -> None:
    """Forget the instance's compiled config and loop (tests; a config change needs a new
    instance)."""
    global _loop, _authorizer
    if _loop is not None:
        if _authorizer is not None:
            _loop.run_until_complete(_authorizer.close())
        _loop.close()
    _loop = None
    _authorizer = None
