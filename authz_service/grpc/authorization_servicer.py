"""envoy.service.auth.v3.Authorization: translate, call the Check use case, translate back."""

from __future__ import annotations

import logging

import grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from authz_service.grpc.check_translate import allow_response, deny_response, request_attributes
from authz_service.model import Decision, Outcome, Reason
from authz_service.services.check import CheckService

log = logging.getLogger(__name__)


class AuthorizationServicer(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    def __init__(self, checks: CheckService):
        self._checks = checks

    async def Check(
        self, request: external_auth_pb2.CheckRequest, context: grpc.aio.ServicerContext
    ) -> external_auth_pb2.CheckResponse:
        try:
            attributes = request_attributes(request)
        except Exception:
            log.exception("unreadable CheckRequest; denying")
            decision = Decision(Outcome.FORBIDDEN, Reason.BAD_REQUEST, "request could not be read")
            return deny_response(decision.outcome, self._checks.runtime().responses.deny(decision))
        decision, runtime = await self._checks.check(attributes)
        if decision.allowed:
            return allow_response(runtime.responses.allow(decision))
        return deny_response(decision.outcome, runtime.responses.deny(decision))
