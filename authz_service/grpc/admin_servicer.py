"""authz_service.admin.v1.AdminService: translate, call the running service, translate back."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from authz_service.admin.v1 import admin_pb2, admin_pb2_grpc
from authz_service.authn.revocation import RevocationStore
from authz_service.config.reload import ConfigReloader
from authz_service.decisions import Identity, RequestAttributes
from authz_service.ratelimit.results import LockoutState
from authz_service.schema.secret_digest import bearer_matches
from authz_service.services.check import CheckService
from authz_service.services.compiled_config import CompiledConfig
from authz_service.services.explain_view import lockout_view, quota_view
from authz_service.services.explanation import QuotaPreview
from authz_service.services.quota_admin import QuotaAdmin, QuotaUnavailable
from authz_service.services.quota_service import QuotaShareService
from authz_service.services.quota_service_view import View, request_buckets, usage_view

ADMIN_SERVICE = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name


class AdminTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses every admin call without `authorization: Bearer <token>` matching the hash."""

    def __init__(self, token_hash: str | None) -> None:
        # Replaced by a reload (AuthzServer applies admin.token_hash live); None: no token.
        self.token_hash = token_hash

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        expected = self.token_hash
        if expected is None:
            return await continuation(details)
        metadata = dict(details.invocation_metadata or ())
        if bearer_matches(str(metadata.get("authorization", "")), expected):
            return await continuation(details)
        return _refusal()


def _refusal() -> grpc.RpcMethodHandler:
    async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "admin token required")

    return grpc.unary_unary_rpc_method_handler(refuse)


def _identity(identity: Identity | None) -> admin_pb2.Identity | None:
    if identity is None:
        return None
    return admin_pb2.Identity(
        principal=identity.principal,
        auth_method=identity.method.value,
        issuer=identity.issuer,
        roles=sorted(identity.roles),
        scopes=sorted(identity.scopes),
        tier=identity.tier,
    )


def _lockout(state: LockoutState | None) -> admin_pb2.Lockout | None:
    view = lockout_view(state)
    return None if view is None else admin_pb2.Lockout(**view)


def _quota_preview(preview: QuotaPreview | None) -> dict[str, Any]:
    """The ExplainResponse fields of the one-call quota preview (the CLI's view, as protobuf)."""
    view = quota_view(preview)
    if view is None:
        return {}
    quotas = [
        admin_pb2.QuotaPreview(
            entries=[admin_pb2.DescriptorEntry(**entry) for entry in row["entries"]],
            **{field: value for field, value in row.items() if field != "entries"},
        )
        for row in view["descriptors"]
    ]
    return {
        "quota_domain": view["domain"],
        "quota_store_unavailable": view["store_unavailable"],
        "quotas": quotas,
    }


def _quota_service_usage(view: View) -> admin_pb2.QuotaServiceUsage:
    """A quota service (RLQS) bucket view as protobuf."""
    fields = {key: value for key, value in view.items() if key not in ("entries", "envoys")}
    return admin_pb2.QuotaServiceUsage(
        entries=[admin_pb2.DescriptorEntry(**entry) for entry in view["entries"]],
        envoys=[admin_pb2.EnvoyShare(**envoy) for envoy in view["envoys"]],
        **fields,
    )


def explain_request_attributes(request: admin_pb2.ExplainRequest) -> RequestAttributes:
    headers = {header.name.lower(): header.value for header in request.headers}
    if request.token:
        headers["authorization"] = f"Bearer {request.token}"
    return RequestAttributes(
        method=(request.method or "GET").upper(),
        host=request.host or "localhost",
        path=request.path or "/",
        headers=headers,
        source_address=request.source_address,
        peer_principal=request.peer_principal,
        context=dict(request.context_extensions),
    )


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):  # type: ignore[misc]
    def __init__(
        self,
        checks: CheckService,
        reloader: ConfigReloader[CompiledConfig],
        revocations: RevocationStore,
        quotas: QuotaAdmin,
        quota_service: QuotaShareService | None = None,
    ) -> None:
        self._checks = checks
        self._reloader = reloader
        self._revocations = revocations
        self._quotas = quotas
        self._quota_service = quota_service

    async def Explain(
        self, request: admin_pb2.ExplainRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ExplainResponse:
        attributes = explain_request_attributes(request)
        explanation = await self._checks.explain(attributes)
        decision = explanation.decision
        buckets = []
        if decision.allowed and self._quota_service is not None:
            views = await request_buckets(
                self._quota_service, self._reloader.current, attributes, decision.identity
            )
            buckets = [_quota_service_usage(usage_view(view)) for view in views]
        return admin_pb2.ExplainResponse(
            decision=decision.outcome.value,
            reason=decision.reason.value,
            message=decision.message,
            policy=decision.policy,
            rule=decision.rule,
            credential=explanation.credential,
            identity=_identity(decision.identity),
            canonical_path=explanation.trace.path,
            rules=[
                admin_pb2.RuleEvaluation(
                    rule=r.rule, matched=r.matched, decided=r.decided, why=r.why
                )
                for r in explanation.trace.rules
            ],
            lockout=_lockout(explanation.lockout),
            **_quota_preview(explanation.quota),
            quota_service=buckets,
            bindings=[
                admin_pb2.BindingCheck(
                    binding=b.binding, verified=b.verified, reason=b.reason, why=b.why
                )
                for b in explanation.bindings
            ],
        )

    async def Reload(
        self, request: admin_pb2.ReloadRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ReloadResponse:
        before = self._reloader.status()
        changed = await self._reloader.reload()
        after = self._reloader.status()
        error = after.last_error if after.failures > before.failures else ""
        return admin_pb2.ReloadResponse(
            changed=changed,
            version=after.version,
            error=error,
            restart_required=list(after.restart_required),
        )

    async def Status(
        self, request: admin_pb2.StatusRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.StatusResponse:
        status = self._reloader.status()
        compiled = self._reloader.current
        jwks = []
        for issuer, verifier in compiled.authenticator.verifiers.items():
            state = verifier.jwks.state()
            jwks.append(
                admin_pb2.JwksStatus(
                    provider=verifier.provider.name,
                    issuer=issuer,
                    key_ids=list(state.key_ids),
                    last_refresh_unix=_wall(state.last_refresh),
                    last_failure_unix=_wall(state.last_failure),
                    last_error=state.last_error,
                )
            )
        return admin_pb2.StatusResponse(
            version=status.version,
            config_path=str(self._reloader.path),
            loaded_at_unix=status.loaded_at,
            last_error=status.last_error,
            last_error_at_unix=status.last_error_at or 0.0,
            reloads=status.reloads,
            failed_reloads=status.failures,
            restart_required=list(status.restart_required),
            jwks=jwks,
            revocation_store=self._revocations.description,
        )

    async def Revoke(
        self, request: admin_pb2.RevokeRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.RevokeResponse:
        settings = self._reloader.current.loaded.config.revocation
        now = time.time()
        longest = now + settings.max_token_lifetime_s
        target = request.WhichOneof("target")
        if target == "jti" and request.jti:
            expires = request.until_or_before_unix or longest
            await self._revocations.revoke_jti(request.jti, min(expires, longest))
            return admin_pb2.RevokeResponse(expires_at_unix=min(expires, longest))
        if target == "subject" and request.subject:
            before = request.until_or_before_unix or now
            await self._revocations.revoke_subject(request.issuer, request.subject, before, longest)
            return admin_pb2.RevokeResponse(expires_at_unix=longest)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "give a jti or a subject")
        raise AssertionError("unreachable")

    async def GetQuota(
        self, request: admin_pb2.QuotaRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.QuotaResponse:
        return await self._quota(request, context, reset=False)

    async def ResetQuota(
        self, request: admin_pb2.QuotaRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.QuotaResponse:
        return await self._quota(request, context, reset=True)

    async def _quota(
        self, request: admin_pb2.QuotaRequest, context: grpc.aio.ServicerContext, *, reset: bool
    ) -> admin_pb2.QuotaResponse:
        entries = [(entry.key, entry.value) for entry in request.entries]
        try:
            counters = await self._quotas.counters(request.domain, entries, reset=reset)
        except QuotaUnavailable as error:
            await context.abort(grpc.StatusCode[error.grpc_status], str(error))
            raise AssertionError("unreachable") from None
        shared = None
        if self._quota_service is not None:
            view = await self._quota_service.view(request.domain, entries)
            # Only a bucket in use: classic and one-call users see their counters alone.
            if view is not None and view.envoys:
                shared = _quota_service_usage(usage_view(view))
        return admin_pb2.QuotaResponse(
            quota_service=shared,
            counters=[
                admin_pb2.QuotaCounter(
                    limit_name=counter.limit_name,
                    requests_per_unit=counter.requests_per_unit,
                    unit=counter.unit,
                    window_seconds=counter.window_seconds,
                    used=counter.used,
                    remaining=counter.remaining,
                    reset_in_seconds=counter.reset_in_seconds,
                )
                for counter in counters
            ],
        )


def _wall(monotonic_time: float | None) -> float:
    """JwksCache records monotonic times; report them as wall-clock for operators."""
    if monotonic_time is None:
        return 0.0
    return time.time() - (time.monotonic() - monotonic_time)
