"""The audit log: one JSON line per decision, with Elastic Common Schema (ECS) field names so
a SIEM ingests it without mapping.

Never written: tokens, API keys, cookies, Authorization headers, query string values. The
record is built from the decision and a few request attributes only — no header is copied.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Any

from authz_service.config.model import AuditSettings
from authz_service.model import Decision, Outcome, Reason, RequestAttributes
from authz_service.ratelimit.model import Code, Descriptor, RateLimitResult

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


def audit_line(
    request: RequestAttributes,
    decision: Decision,
    *,
    duration_s: float,
    trace_id: str = "",
    span_id: str = "",
    principal: str | None = None,
    now: float | None = None,
) -> str:
    """One ECS JSON line, formatted directly: a dict tree through json.dumps costs 3x more."""
    path, query = redact_query(request.path)
    identity = decision.identity
    allowed = decision.allowed
    url = f'"domain":{_q(request.host)},"path":{_q(path)}'
    if query:
        url += f',"query":{_q(query)}'
    authz = (
        f'"decision":"{decision.outcome.value}","policy":{_q(decision.policy)},'
        f'"rule":{_q(decision.rule)},"http_status":{_STATUS[decision.outcome]}'
    )
    tail = ""
    if request.source_address:
        tail += f',"client":{{"ip":{_q(request.source_address)}}}'
    if identity is not None:
        user_id = principal if principal is not None else identity.principal
        roles = ",".join(_q(role) for role in sorted(identity.roles))
        tail += f',"user":{{"id":{_q(user_id)}' + (f',"roles":[{roles}]' if roles else "") + "}"
        authz += f',"auth_method":"{identity.method.value}"'
    if decision.reason is Reason.RATE_LIMITED:  # Check's own quota; not a lockout
        authz += ',"rate_limit":"over_limit"'
    tail += _trace_fields(trace_id, span_id)
    event = _event(now, '"authentication","web"', "authorization-check", allowed)
    return (
        f'{event},"reason":"{decision.reason.value}","duration":{int(duration_s * 1e9)}}},'
        f'"http":{{"request":{{"id":{_q(request.request_id)},"method":{_q(request.method)}}}}},'
        f'"url":{{{url}}},"authz":{{{authz}}}{tail}}}'
    )


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


def audit_record(
    request: RequestAttributes, decision: Decision, **fields: Any
) -> dict[str, object]:
    """The same record as a dict (for tests and tools); `fields` as for `audit_line`."""
    record: dict[str, object] = json.loads(audit_line(request, decision, **fields))
    return record


_STATUS = {
    Outcome.ALLOW: 200,
    Outcome.UNAUTHENTICATED: 401,
    Outcome.FORBIDDEN: 403,
    Outcome.RATE_LIMITED: 429,
    Outcome.UNAVAILABLE: 503,
}


@dataclass(frozen=True, slots=True)
class PendingRecord:
    """What the request path hands over; the writer thread builds the record from it."""

    request: RequestAttributes
    decision: Decision
    duration_s: float
    trace_id: str
    span_id: str
    principal: str | None
    at: float

    def line(self) -> str:
        return audit_line(
            self.request,
            self.decision,
            duration_s=self.duration_s,
            trace_id=self.trace_id,
            span_id=self.span_id,
            principal=self.principal,
            now=self.at,
        )


@dataclass(frozen=True, slots=True)
class PendingRateLimitRecord:
    domain: str
    descriptors: tuple[Descriptor, ...]
    result: RateLimitResult | None
    duration_s: float
    trace_id: str
    span_id: str
    at: float

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


class AuditLog:
    """Writes records from a background thread, in batches.

    The request path only enqueues the values a record needs; building the JSON and the
    write (one syscall per batch) happen off the event loop. The queue is bounded: if the
    output cannot keep up, records are dropped and counted rather than delaying decisions.
    """

    def __init__(
        self, settings: AuditSettings, max_queue: int = 100_000, flush_interval_s: float = 0.2
    ) -> None:
        self.enabled = settings.enabled
        self.flush_interval_s = flush_interval_s
        self.dropped = 0
        self._stream: IO[str] | None = None
        self._owned = False
        self._queue: queue.SimpleQueue[PendingRecord | PendingRateLimitRecord | None] = (
            queue.SimpleQueue()
        )
        self._max_queue = max_queue
        self._thread: threading.Thread | None = None
        if not settings.enabled:
            return
        if settings.output == "stdout":
            self._stream = sys.stdout
        elif settings.output == "stderr":
            self._stream = sys.stderr
        else:
            self._stream = open(settings.output, "a", encoding="utf-8")  # noqa: SIM115
            self._owned = True
        self._thread = threading.Thread(target=self._drain, name="audit-log", daemon=True)
        self._thread.start()

    def record(
        self,
        request: RequestAttributes,
        decision: Decision,
        duration_s: float,
        trace_id: str,
        span_id: str,
        principal: str | None,
    ) -> None:
        """Enqueue a decision (cheap); the writer thread turns it into a JSON line."""
        self._enqueue(
            PendingRecord(request, decision, duration_s, trace_id, span_id, principal, time.time())
        )

    def record_rate_limit(
        self,
        domain: str,
        descriptors: tuple[Descriptor, ...],
        result: RateLimitResult | None,
        duration_s: float,
        trace_id: str,
        span_id: str,
    ) -> None:
        self._enqueue(
            PendingRateLimitRecord(
                domain, descriptors, result, duration_s, trace_id, span_id, time.time()
            )
        )

    def _enqueue(self, pending: PendingRecord | PendingRateLimitRecord) -> None:
        if self._thread is None:
            return
        if self._queue.qsize() >= self._max_queue:
            self.dropped += 1
            return
        self._queue.put(pending)

    def write(self, record: dict[str, object]) -> None:
        """Write one prepared record at once (tests, rare events)."""
        self._write_lines([json.dumps(record, separators=(",", ":"))])

    def _drain(self) -> None:
        while True:
            # Wake up a few times a second and take everything: one wake-up (and one GIL
            # hand-over) per item would cost the event loop more than the formatting.
            batch = [self._queue.get()]
            time.sleep(self.flush_interval_s)
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            lines = []
            stop = False
            for entry in batch:
                if entry is None:
                    stop = True
                else:
                    lines.append(entry.line())
            self._write_lines(lines)
            if stop:
                return

    def _write_lines(self, lines: list[str]) -> None:
        if self._stream is None or not lines:
            return
        try:
            self._stream.write("\n".join(lines) + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # a full disk must not turn into denied requests

    def close(self) -> None:
        """Write what is queued, then stop."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None
        if self._owned and self._stream is not None:
            self._stream.close()
        self._stream = None
