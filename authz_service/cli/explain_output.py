"""What `authz-service explain` prints (text or JSON), and the lockout and quota lines both
CLIs print from the views of services/explain_view.py.

`authz-service explain` builds the views from the decision core and `authz-service admin
explain` from the admin API's response, so the two print the same thing the same way.
"""

from __future__ import annotations

import json

from authz_service.decisions import Identity
from authz_service.services.explain_view import View, lockout_view, quota_view
from authz_service.services.explanation import Explanation


def lockout_lines(view: View | None) -> list[str]:
    if view is None:
        return []
    if view["locked"]:
        return [f"lockout:    LOCKED for {view['retry_after_seconds']:.0f}s more"]
    return [f"lockout:    not locked ({view['failures_left']} failed attempts left)"]


def quota_lines(view: View | None) -> list[str]:
    if view is None:
        return []
    lines = [f"quota:      domain {view['domain']} (the next request; nothing charged)"]
    if view["store_unavailable"]:
        lines.append("  store unavailable: Check answers per rate_limit.failure_mode")
    for row in view["descriptors"]:
        entries = ", ".join(f"{e['key']}={e['value']}" for e in row["entries"])
        if not row["requests_per_unit"]:
            lines.append(f"  {entries}: no limit")
            continue
        name = f" ({row['limit_name']})" if row["limit_name"] else ""
        lines.append(
            f"  {entries}: {row['code']}, {row['remaining']} of "
            f"{row['requests_per_unit']}/{row['unit']}{name} left, "
            f"resets in {row['reset_in_seconds']:.1f}s"
        )
    return lines


def _identity_view(identity: Identity | None) -> dict[str, object] | None:
    if identity is None:
        return None
    return {
        "principal": identity.principal,
        "method": identity.method.value,
        "issuer": identity.issuer,
        "roles": sorted(identity.roles),
        "scopes": sorted(identity.scopes),
        "tier": identity.tier,
    }


def explanation_json(explanation: Explanation) -> str:
    """`authz-service explain --json`."""
    decision = explanation.decision
    return json.dumps(
        {
            "decision": decision.outcome.value,
            "reason": decision.reason.value,
            "message": decision.message,
            "policy": decision.policy,
            "rule": decision.rule,
            "credential": explanation.credential,
            "identity": _identity_view(decision.identity),
            "path": explanation.trace.path,
            "rules": [
                {"rule": r.rule, "matched": r.matched, "decided": r.decided, "why": r.why}
                for r in explanation.trace.rules
            ],
            "conditions": [
                {"rule": c.rule, "when": c.expression, "value": c.value}
                for c in explanation.trace.conditions
            ],
            "shadow": _shadow_view(explanation),
            "lockout": lockout_view(explanation.lockout),
            "bindings": [str(binding) for binding in explanation.bindings],
            "quota": quota_view(explanation.quota),
        },
        indent=2,
    )


def _shadow_view(explanation: Explanation) -> dict[str, str] | None:
    shadow = explanation.trace.shadow
    if shadow is None:
        return None
    return {
        "decision": shadow.outcome.value,
        "reason": shadow.reason.value,
        "policy": shadow.policy,
        "rule": shadow.rule,
    }


def explanation_text(explanation: Explanation) -> str:
    """`authz-service explain`: one line per step."""
    decision = explanation.decision
    lines = [
        f"decision:   {decision.outcome.value.upper()} ({decision.reason.value})",
        f"policy:     {decision.policy or '-'}",
        f"rule:       {decision.rule or '-'}",
        f"why:        {decision.message}",
        f"credential: {explanation.credential}",
        *(f"binding:    {binding}" for binding in explanation.bindings),
    ]
    identity = _identity_view(decision.identity)
    if identity:
        lines.append(
            f"identity:   {identity['principal']} via {identity['method']}, "
            f"roles {identity['roles']}, scopes {identity['scopes']}"
        )
    if explanation.trace.path:
        lines.append(f"path:       {explanation.trace.path} (canonical)")
    lines.append("rules evaluated, in order:")
    for rule in explanation.trace.rules:
        mark = "=>" if rule.decided else "  "
        state = "matched" if rule.matched else "skipped"
        lines.append(f"  {mark} {rule.rule}: {state}: {rule.why}")
    if not explanation.trace.rules:
        lines.append("  (none)")
    shadow = _shadow_view(explanation)
    if shadow is not None:
        lines.append(
            f"shadow:     would be {shadow['decision'].upper()} ({shadow['reason']}) by policy "
            f"{shadow['policy']!r} rule {shadow['rule'] or '-'!r} (recorded, not enforced)"
        )
    if explanation.trace.conditions:
        lines.append("conditions (when:):")
        for condition in explanation.trace.conditions:
            lines.append(f"  {condition.rule}: {condition.expression} -> {condition.value}")
    lines.extend(lockout_lines(lockout_view(explanation.lockout)))
    lines.extend(quota_lines(quota_view(explanation.quota)))
    return "\n".join(lines)
