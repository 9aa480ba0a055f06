"""The audit lines: one JSON line per decision, with Elastic Common Schema (ECS) field names
so a SIEM ingests it without mapping. audit_log.py queues and writes them.

Never written: tokens, API keys, cookies, Authorization headers, query string values. The
record is built from the decision and a few request attributes only — no header is copied.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from dataclasses import dataclass

from authz_service.decisions import (
    AuthMethod,
    Decision,
    Outcome,
    Reason,
    RequestAttributes,
    ShadowVerdict,
    http_status,
)
from authz_service.ratelimit.results import Code, Descriptor, RateLimitResult

ECS_VERSION = "8.11.0"
REDACTED = "REDACTED"


def redact_query(path: str) -> tuple[str, str]:
    """(path, query with every value replaced) — values may carry tokens or personal data."""
    path_part, _, query = path.partition("?")
    path_part = path_part.partition("#")[0]
    if not query:
        return path_part, ""
    query = query.partition("#")[0]
    redacted = []
    for pair in query.split("&"):
        if not pair:
            continue
        name, has_value, _ = pair.partition("=")
        redacted.append(f"{name}={REDACTED}" if has_value else name)
    return path_part, "&".join(redacted)


_second_cache: tuple[int, str] = (-1, "")


def _iso(now: float) -> str:
    global _second_cache
    second = int(now)
    if _second_cache[0] != second:  # strftime once per second, not once per line
        _second_cache = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_second_cache[1]}.{int((now % 1) * 1000):03d}Z"


_q = json.JSONEncoder(ensure_ascii=True).encode  # a JSON string literal, quotes included


# Not frozen: a frozen dataclass's __init__ sets each of its 20 fields through
# object.__setattr__, twice the cost of building the record on the event loop.
@dataclass(slots=True)
class CheckRecord:
    """What a Check line says, and nothing more: no header, no token, no claim.

    This is what waits in the audit queue, so it must not keep the request alive: a request
    carries every header (tens of KB with a token) and a queued one held them all.
    """

    at: float
    duration_s: float
    method: str
    host: str
    path: str
    request_id: str
    source_address: str
    outcome: Outcome
    reason: Reason
    policy: str
    rule: str
    auth_method: AuthMethod | None  # None: no identity
    principal: str
    roles: frozenset[str]
    trace_id: str
    span_id: str
    # What `authz-service replay` needs to decide again (no secret among them): the identity's
    # scopes, tier and mTLS peer, and the would-be decision of shadow rules.
    scopes: frozenset[str] = frozenset()
    tier: str = ""
    peer_principal: str = ""
    shadow: ShadowVerdict | None = None

    @classmethod
    def of(
        cls,
        request: RequestAttributes,
        decision: Decision,
        duration_s: float,
        trace_id: str,
        span_id: str,
        principal: str | None,
        at: float,
    ) -> CheckRecord:
        identity = decision.identity
        if identity is not None and principal is None:
            principal = identity.principal
        return cls(
            at,
            duration_s,
            request.method,
            request.host,
            request.path,
            request.request_id,
            request.source_address,
            decision.outcome,
            decision.reason,
            decision.policy,
            decision.rule,
            identity.method if identity is not None else None,
            principal or "",
            identity.roles if identity is not None else frozenset(),
            trace_id,
            span_id,
            identity.scopes if identity is not None else frozenset(),
            identity.tier if identity is not None else "",
            request.peer_principal,
            decision.shadow,
        )

    @property
    def nbytes(self) -> int:
        """Memory the record holds (its strings counted whole, shared or not)."""
        return (
            _RECORD_OVERHEAD
            + _sizeof(self.method)
            + _sizeof(self.host)
            + _sizeof(self.path)
            + _sizeof(self.request_id)
            + _sizeof(self.source_address)
            + _sizeof(self.principal)
            + _strings_size(self.roles)
            + _sizeof(self.trace_id)
            + _sizeof(self.span_id)
            # Replay's fields; an empty one is the shared "" and holds nothing of its own.
            + _strings_size(self.scopes)
            + (_sizeof(self.tier) if self.tier else 0)
            + (_sizeof(self.peer_principal) if self.peer_principal else 0)
        )

    def line(self) -> str:
        """Formatted directly: a dict tree through json.dumps costs 3x more."""
        path, query = redact_query(self.path)
        allowed = self.outcome is Outcome.ALLOW
        url = f'"domain":{_q(self.host)},"path":{_q(path)}'
        if query:
            url += f',"query":{_q(query)}'
        authz = (
            f'"decision":"{self.outcome.value}","policy":{_q(self.policy)},'
            f'"rule":{_q(self.rule)},"http_status":{http_status(self.outcome, self.reason)}'
        )
        tail = ""
        if self.source_address:
            tail += f',"client":{{"ip":{_q(self.source_address)}}}'
        if self.auth_method is not None:
            roles = ",".join(_q(role) for role in sorted(self.roles))
            tail += f',"user":{{"id":{_q(self.principal)}'
            tail += (f',"roles":[{roles}]' if roles else "") + "}"
            authz += f',"auth_method":"{self.auth_method.value}"'
            if self.scopes:
                authz += f',"scopes":[{",".join(_q(s) for s in sorted(self.scopes))}]'
            if self.tier:
                authz += f',"tier":{_q(self.tier)}'
        if self.peer_principal:
            authz += f',"peer_principal":{_q(self.peer_principal)}'
        if self.shadow is not None:
            shadow = self.shadow
            authz += (
                f',"shadow":{{"decision":"{shadow.outcome.value}",'
                f'"reason":"{shadow.reason.value}","rule":{_q(shadow.rule)},'
                f'"policy":{_q(shadow.policy)}}}'
            )
        if self.reason is Reason.RATE_LIMITED:  # Check's own quota; not a lockout
            authz += ',"rate_limit":"over_limit"'
        tail += _trace_fields(self.trace_id, self.span_id)
        event = _event(self.at, '"authentication","web"', "authorization-check", allowed)
        return (
            f'{event},"reason":"{self.reason.value}","duration":{int(self.duration_s * 1e9)}}},'
            f'"http":{{"request":{{"id":{_q(self.request_id)},"method":{_q(self.method)}}}}},'
            f'"url":{{{url}}},"authz":{{{authz}}}{tail}}}'
        )


# The record object, its floats and the str headers of its fields (sys.getsizeof counts
# those of each string already); generous, so that the bound errs on the safe side.
_RECORD_OVERHEAD = 256
_sizeof = sys.getsizeof


@functools.lru_cache(maxsize=4096)
def _strings_size(strings: frozenset[str]) -> int:
    """The strings' sizes summed: an identity's roles and scopes are the same frozenset on
    every warm check (the token cache keeps the Identity), so it is summed once."""
    return sum(map(_sizeof, strings))


def _event(now: float | None, categories: str, action: str, allowed: bool) -> str:
    """The line's start up to `event`'s last fields (reason, duration), left open."""
    return (
        f'{{"@timestamp":"{_iso(time.time() if now is None else now)}",'
        f'"ecs":{{"version":"{ECS_VERSION}"}},'
        f'"event":{{"kind":"event","category":[{categories}],'
        f'"type":["{"allowed" if allowed else "denied"}"],"action":"{action}",'
        f'"outcome":"{"success" if allowed else "failure"}"'
    )


def _trace_fields(trace_id: str, span_id: str) -> str:
    if not trace_id:
        return ""
    fields = f',"trace":{{"id":{_q(trace_id)}}}'
    return fields + (f',"span":{{"id":{_q(span_id)}}}' if span_id else "")


def rate_limit_audit_line(
    domain: str,
    descriptors: tuple[Descriptor, ...],
    result: RateLimitResult | None,
    *,
    duration_s: float,
    trace_id: str = "",
    span_id: str = "",
    now: float | None = None,
) -> str:
    """One ECS JSON line for a ShouldRateLimit answer (None: the store could not answer).

    Descriptor values are what Envoy built (client IP, principal, tier...), as the Check
    line's client and user fields; Envoy never puts credentials in them.
    """
    if result is None:
        decision, reason, allowed = "unavailable", "store_unavailable", False
    elif result.overall_code is Code.OVER_LIMIT:
        decision, reason, allowed = "rate_limited", "over_limit", False
    else:
        decision, reason, allowed = "allow", "ok", True
    entries = ",".join(
        "[" + ",".join(f"[{_q(key)},{_q(value)}]" for key, value in d.entries) + "]"
        for d in descriptors
    )
    ratelimit = f'"domain":{_q(domain)},"descriptors":[{entries}]'
    # Shadow mode shows here: an allow whose limits were still exceeded.
    tripped = result.tripped if result is not None else []
    if tripped:
        ratelimit += f',"tripped":[{",".join(_q(name) for name in tripped)}]'
    event = _event(now, '"web"', "rate-limit-check", allowed)
    return (
        f'{event},"reason":"{reason}","duration":{int(duration_s * 1e9)}}},'
        f'"authz":{{"decision":"{decision}","ratelimit":{{{ratelimit}}}}}'
        f"{_trace_fields(trace_id, span_id)}}}"
    )


@dataclass(frozen=True, slots=True)
class RateLimitRecord:
    """What a ShouldRateLimit line says: the descriptors Envoy sent and the answer."""

    domain: str
    descriptors: tuple[Descriptor, ...]
    result: RateLimitResult | None
    duration_s: float
    trace_id: str
    span_id: str
    at: float

    @property
    def nbytes(self) -> int:
        entries = sum(
            _sizeof(key) + _sizeof(value) + 64 for d in self.descriptors for key, value in d.entries
        )
        statuses = 128 * len(self.result.statuses) if self.result is not None else 0
        return _RECORD_OVERHEAD + _sizeof(self.domain) + entries + statuses

    def line(self) -> str:
        return rate_limit_audit_line(
            self.domain,
            self.descriptors,
            self.result,
            duration_s=self.duration_s,
            trace_id=self.trace_id,
            span_id=self.span_id,
            now=self.at,
        )
