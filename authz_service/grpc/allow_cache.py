"""Reuse the CheckResponse built for an identity that was allowed by the same rule before.

The verified-token cache hands back the same Identity object for a repeated token, so an
allow response (identity headers, headers to remove, dynamic metadata) only needs building
once per (identity, rule) and config. Protobuf building is ~5% of a warm Check otherwise.
Responses are never mutated after building, so sharing one between RPCs is safe. An answer
that depends on the request itself (a token cookie cut out of its Cookie header) is built
for that request and not kept.
"""

from __future__ import annotations

from envoy.service.auth.v3 import external_auth_pb2

from authz_service.decisions import Decision, RequestAttributes
from authz_service.grpc.check_translate import allow_response
from authz_service.services.compiled_config import CompiledConfig

_Entry = tuple[object, str, str, external_auth_pb2.CheckResponse]


class AllowResponseCache:
    def __init__(self, max_entries: int = 20_000) -> None:
        self._max_entries = max_entries
        self._compiled_config: CompiledConfig | None = None
        self._entries: dict[int, _Entry] = {}

    def response(
        self, compiled: CompiledConfig, decision: Decision, request: RequestAttributes
    ) -> external_auth_pb2.CheckResponse:
        if compiled.responses.rewrites_cookies(request):
            return allow_response(compiled.responses.allow(decision, request))
        if compiled is not self._compiled_config:  # a reload may change headers: start afresh
            self._compiled_config = compiled
            self._entries = {}
        identity = decision.identity
        key = id(identity)
        entry = self._entries.get(key)
        # `is` on the identity guards against id() reuse after an entry's identity is gone.
        if (
            entry is not None
            and entry[0] is identity
            and entry[1] == decision.rule
            and entry[2] == decision.policy
        ):
            return entry[3]
        response = allow_response(compiled.responses.allow(decision))
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[key] = (identity, decision.rule, decision.policy, response)
        return response
