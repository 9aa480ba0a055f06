"""Reuse the allow answer built for an identity that was allowed by the same rule before.

The verified-token cache hands back the same Identity object for a repeated token, so an
allow answer (identity headers, headers to remove, dynamic metadata, in the transport's wire
format) only needs building once per (identity, rule, policy) and config: a CheckResponse
on gRPC, an HttpReply with its encoded head on the HTTP check endpoint. Answers are never
mutated after building, so sharing one between calls is safe. An answer that depends on the
request itself (a token cookie cut out of its Cookie header) is built for that request and
not kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from authz_service.decisions import Decision, RequestAttributes
from authz_service.services.compiled_config import CompiledConfig
from authz_service.services.response_policy import AllowResponse

Answer = TypeVar("Answer")


class AllowAnswerCache(Generic[Answer]):
    """`build` turns the response policy's AllowResponse into the transport's answer."""

    def __init__(self, build: Callable[[AllowResponse], Answer], max_entries: int = 20_000):
        self._build = build
        self._max_entries = max_entries
        self._compiled_config: CompiledConfig | None = None
        self._entries: dict[int, tuple[object, str, str, Answer]] = {}

    def answer(
        self, compiled: CompiledConfig, decision: Decision, request: RequestAttributes
    ) -> Answer:
        if compiled.responses.rewrites_cookies(request):
            return self._build(compiled.responses.allow(decision, request))
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
        answer = self._build(compiled.responses.allow(decision))
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[key] = (identity, decision.rule, decision.policy, answer)
        return answer
