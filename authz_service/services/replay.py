"""`authz-service replay`: re-decide recorded Check decisions under a candidate config.

Each audit line (telemetry/audit.py) says enough to decide the request again without a
secret: method, host, path (query values redacted), client address, mTLS peer, the policy
selected, and the identity as verified then (principal, auth method, roles, scopes, tier).
Replay re-runs the candidate's RBAC (`PolicySet.authorize`, `when:` conditions included) on
that; the credential is not verified again: a token that failed then fails the same way now.

What a line cannot give back: header values, query values and token claims are never
audited, so a candidate `when:` reading them sees them empty or missing; a principal audited
hashed (`telemetry.tracing.hash_principal`) is compared hashed. Decisions not made by the
policy (locked out, rate limited, unavailable) are counted and not re-decided.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from authz_service.decisions import (
    AuthMethod,
    AuthnFailure,
    Decision,
    Identity,
    Outcome,
    Reason,
    RequestAttributes,
)
from authz_service.services.compiled_config import CompiledConfig

CHECK_ACTION = "authorization-check"
# Outcomes the policy does not decide: replay leaves them alone.
NOT_POLICY = frozenset({"rate_limited", "unavailable", "locked_out", "request_too_large"})


@dataclass(frozen=True, slots=True)
class Recorded:
    """One audited decision, as replay reads it back."""

    line: int
    request: RequestAttributes
    authn: Identity | AuthnFailure | None
    outcome: str
    reason: str
    policy: str
    rule: str
    at: str


@dataclass(frozen=True, slots=True)
class Change:
    recorded: Recorded
    decision: Decision

    @property
    def group(self) -> tuple[str, str, str, str]:
        """(candidate policy, candidate rule, candidate reason, "old -> new" outcome)."""
        moved = f"{self.recorded.outcome} -> {self.decision.outcome.value}"
        return (self.decision.policy, self.decision.rule, self.decision.reason.value, moved)


@dataclass(slots=True)
class ReplayReport:
    decisions: int = 0
    unchanged: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count, not re-decided
    unreadable: list[int] = field(default_factory=list)  # line numbers
    changes: list[Change] = field(default_factory=list)

    def groups(self) -> dict[tuple[str, str, str, str], list[Change]]:
        grouped: dict[tuple[str, str, str, str], list[Change]] = {}
        for change in self.changes:
            grouped.setdefault(change.group, []).append(change)
        return dict(sorted(grouped.items(), key=lambda item: -len(item[1])))


def read_decisions(lines: Iterable[str], context_key: str) -> Iterator[Recorded | int]:
    """Each Check line as a Recorded, each unreadable line as its line number; other audit
    lines (ShouldRateLimit) are passed over."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            entry = json.loads(text)
            if entry["event"]["action"] != CHECK_ACTION:
                continue
            yield _recorded(number, entry, context_key)
        except (ValueError, KeyError, TypeError, AttributeError):
            yield number


def _recorded(number: int, entry: dict[str, Any], context_key: str) -> Recorded:
    authz = entry["authz"]
    url = entry["url"]
    path = url["path"] + (f"?{url['query']}" if url.get("query") else "")
    policy = authz.get("policy", "")
    request = RequestAttributes(
        method=entry["http"]["request"]["method"],
        host=url["domain"],
        path=path,
        source_address=entry.get("client", {}).get("ip", ""),
        peer_principal=authz.get("peer_principal", ""),
        context={context_key: policy} if policy else {},
        request_id=entry["http"]["request"].get("id", ""),
    )
    reason = entry["event"]["reason"]
    outcome = authz["decision"]
    authn: Identity | AuthnFailure | None = None
    if "auth_method" in authz:
        user = entry.get("user", {})
        authn = Identity(
            principal=user.get("id", ""),
            method=AuthMethod(authz["auth_method"]),
            roles=frozenset(user.get("roles", [])),
            scopes=frozenset(authz.get("scopes", [])),
            tier=authz.get("tier", ""),
        )
    elif outcome == Outcome.UNAUTHENTICATED.value and reason != "authentication_required":
        authn = AuthnFailure(Reason(reason), "credential refused when recorded")
    return Recorded(
        number,
        request,
        authn,
        outcome,
        reason,
        policy,
        authz.get("rule", ""),
        entry.get("@timestamp", ""),
    )


def replay(compiled: CompiledConfig, lines: Iterable[str]) -> ReplayReport:
    """Every recorded Check decision of `lines` re-decided under `compiled`'s policies."""
    report = ReplayReport()
    key = compiled.loaded.config.policy_selection.context_key
    for item in read_decisions(lines, key):
        if isinstance(item, int):
            report.unreadable.append(item)
            continue
        report.decisions += 1
        if item.outcome in NOT_POLICY or item.reason in NOT_POLICY:
            report.skipped[item.reason] = report.skipped.get(item.reason, 0) + 1
            continue
        decision = compiled.policies.authorize(item.request, item.authn)
        if decision.outcome.value == item.outcome and decision.reason.value == item.reason:
            report.unchanged += 1
        else:
            report.changes.append(Change(item, decision))
    return report
