"""RBAC: an Identity and a request -> a Decision. Pure: no I/O, no clocks, no protobuf.

Rules are evaluated in the order written; the first rule whose match fits the request
decides. Nothing matching means deny. An invalid credential is always a 401, whatever the
rules say: a broken token must not quietly become an anonymous request.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from authz_service.authz.canonical_cache import (
    APPLICABLE_CACHE_ENTRIES,
    CACHED_BYTES,
    canonical_host_cached,
    canonical_path_cached,
)
from authz_service.authz.conditions import BadCondition, Condition, variables
from authz_service.authz.globs import compile_glob
from authz_service.authz.hosts import AmbiguousHost
from authz_service.authz.path_match import CompiledPathMatch
from authz_service.authz.paths import AmbiguousPath, without_parameters
from authz_service.decisions import (
    AuthnFailure,
    Decision,
    Identity,
    Outcome,
    Reason,
    RequestAttributes,
    ShadowVerdict,
)
from authz_service.schema import Policy, PolicySelection, Requirement, Rule


class Mismatch(enum.Enum):
    """The part of a request that a rule's match does not cover."""

    METHOD = "method"
    HOST = "host"
    PATH = "path"


@dataclass(frozen=True, slots=True)
class RuleTrace:
    """One rule's evaluation, for `explain`."""

    rule: str
    matched: bool
    why: str
    decided: bool = False


@dataclass(frozen=True, slots=True)
class ConditionTrace:
    """One `when:` evaluated, for `explain`: its rule, its source and its value."""

    rule: str
    expression: str
    value: str


@dataclass(slots=True)
class Trace:
    policy: str = ""
    path: str = ""
    rules: list[RuleTrace] = field(default_factory=list)
    conditions: list[ConditionTrace] = field(default_factory=list)
    shadow: ShadowVerdict | None = None


class CompiledRule:
    def __init__(self, rule: Rule):
        self.name = rule.name
        self.deny = rule.deny
        self.allow = rule.allow
        # The config holds hosts in canonical form (authz/hosts.py), as requests are compared.
        self._hosts = [compile_glob(h) for h in rule.match.hosts]
        literal = all(not any(ch in h for ch in "*?") for h in rule.match.hosts)
        self._host_set = frozenset(rule.match.hosts) if literal else None
        self._methods = frozenset(rule.match.methods)
        self._paths = [CompiledPathMatch(p) for p in rule.match.paths]
        requirement = rule.allow if isinstance(rule.allow, Requirement) else None
        self._principals = [compile_glob(p) for p in requirement.principals] if requirement else []
        self._peers = [compile_glob(p) for p in requirement.peer_principals] if requirement else []
        self.requirement = requirement
        self.condition = Condition(rule.when, deny_rule=rule.deny) if rule.when else None

    def first_segments(self) -> set[str] | None:
        """First path segments this rule can match; None when it may match any path."""
        if not self._paths:
            return None
        segments = set()
        for path_match in self._paths:
            segment = path_match.first_segment
            if segment is None:
                return None
            segments.add(segment)
        return segments

    def mismatch(self, method: str, host: str, path: str) -> Mismatch | None:
        """What of the request this rule's match does not cover; None when the rule applies.

        Check and explain both ask this (explain then says why with `why_not`), so the two can
        never disagree on which rule applies. `host` is canonical.
        """
        if self._methods and method not in self._methods:
            return Mismatch.METHOD
        if self._hosts:
            # Hosts without wildcards are a set lookup, not a regex per host.
            if self._host_set is not None:
                if host not in self._host_set:
                    return Mismatch.HOST
            elif not any(h.fullmatch(host) for h in self._hosts):
                return Mismatch.HOST
        if self._paths and not any(p.matches(path) for p in self._paths):
            return Mismatch.PATH
        return None

    def why_not(self, mismatch: Mismatch, method: str, host: str, path: str) -> str:
        """`mismatch` in words, for explain."""
        if mismatch is Mismatch.METHOD:
            return f"method {method} not in {sorted(self._methods)}"
        if mismatch is Mismatch.HOST:
            return f"host {host!r} not matched"
        return f"path {path!r} not matched by " + ", ".join(p.description for p in self._paths)

    def unmet(self, identity: Identity, peer_principal: str) -> tuple[Reason, str] | None:
        """Why `identity` does not satisfy the requirement; None when it does."""
        req = self.requirement
        if req is None:
            return None
        if req.auth_methods and identity.method.value not in req.auth_methods:
            return Reason.PRINCIPAL_NOT_ALLOWED, f"auth method {identity.method.value} not allowed"
        if self._principals and not any(p.fullmatch(identity.principal) for p in self._principals):
            return Reason.PRINCIPAL_NOT_ALLOWED, "principal not allowed"
        # No client certificate is no peer at all, even for a pattern like "*".
        if self._peers and not (
            peer_principal and any(p.fullmatch(peer_principal) for p in self._peers)
        ):
            return Reason.PRINCIPAL_NOT_ALLOWED, "peer (mTLS) principal not allowed"
        if req.roles_any and identity.roles.isdisjoint(req.roles_any):
            return Reason.MISSING_ROLE, f"needs one of roles {sorted(req.roles_any)}"
        missing_roles = set(req.roles_all) - identity.roles
        if missing_roles:
            return Reason.MISSING_ROLE, f"needs roles {sorted(missing_roles)}"
        missing_scopes = set(req.scopes_all) - identity.scopes
        if missing_scopes:
            return Reason.MISSING_SCOPE, f"needs scopes {sorted(missing_scopes)}"
        return None


class ConditionError(BadCondition):
    """A rule's `when:` that does not compile; `location` is its path in the config."""

    def __init__(self, location: tuple[str | int, ...], problem: BadCondition) -> None:
        column = f" (column {problem.column})" if problem.column else ""
        super().__init__(f"{problem}{column}", problem.column)
        self.location = location


def _compile_rule(policy: str, index: int, rule: Rule) -> CompiledRule:
    try:
        return CompiledRule(rule)
    except BadCondition as problem:
        raise ConditionError(("policies", policy, "rules", index, "when"), problem) from None


class CompiledPolicy:
    """A policy's rules, indexed by the request path's first segment.

    Check looks only at rules that can match the path's first segment (plus those that match
    any path), in the order written: the same first match as a full scan, with far fewer
    rules tried when a policy has many.
    """

    def __init__(self, name: str, policy: Policy, *, with_shadow_rules: bool = False):
        self.name = name
        self.rules = tuple(
            _compile_rule(name, index, rule)
            for index, rule in enumerate(policy.rules)
            if with_shadow_rules or rule.mode == "enforce"
        )
        # What the conditions of this policy read: only that is built for CEL, once a request.
        self.condition_fields = frozenset().union(
            *(rule.condition.fields for rule in self.rules if rule.condition is not None)
        )
        # A request without a Host would skip every host-scoped rule, deny rules included.
        self.host_scoped = any(rule.match.hosts for rule in policy.rules)
        # Evaluated beside this policy, recorded in Decision.shadow, never enforced: the same
        # rules with the shadow ones in place (or a `shadow_of` policy, set by PolicySet).
        self.shadow: CompiledPolicy | None = None
        if not with_shadow_rules and any(rule.mode == "shadow" for rule in policy.rules):
            self.shadow = CompiledPolicy(name, policy, with_shadow_rules=True)
        by_segment: dict[str, list[int]] = {}
        anywhere: list[int] = []
        for index, rule in enumerate(self.rules):
            segments = rule.first_segments()
            if segments is None:
                anywhere.append(index)
            else:
                for segment in segments:
                    by_segment.setdefault(segment, []).append(index)
        self._anywhere = tuple(self.rules[i] for i in anywhere)
        # A warm request repeats its method, host and path: which rules apply to them is
        # worked out once (bounded; a reload builds a new policy, so a new cache).
        self._cached_applicable = functools.lru_cache(maxsize=APPLICABLE_CACHE_ENTRIES)(
            self._applicable
        )
        self._by_segment = {
            segment: tuple(self.rules[i] for i in sorted(set(indices) | set(anywhere)))
            for segment, indices in by_segment.items()
        }

    def candidates(self, path: str) -> tuple[CompiledRule, ...]:
        """Rules that may match `path` (canonical, so it starts with "/"), in order."""
        end = path.find("/", 1)
        segment = path[1:] if end == -1 else path[1:end]
        return self._by_segment.get(segment, self._anywhere)

    def applicable(self, method: str, host: str, path: str) -> tuple[CompiledRule, ...]:
        """The rules Check walks for this method, host and (canonical) path, in order."""
        if len(path) + len(host) <= CACHED_BYTES:
            return self._cached_applicable(method, host, path)
        return self._applicable(method, host, path)

    def _applicable(self, method: str, host: str, path: str) -> tuple[CompiledRule, ...]:
        """The candidates whose match covers the request, in order, up to the first without
        a `when:` (it decides whatever the request carries): what Check walks."""
        applicable: list[CompiledRule] = []
        for rule in self.candidates(path):
            if rule.mismatch(method, host, path) is None:
                applicable.append(rule)
                if rule.condition is None:
                    break
        return tuple(applicable)


class PolicySet:
    """Every policy of a config, and how a request selects one."""

    def __init__(self, policies: Mapping[str, Policy], selection: PolicySelection):
        self._policies = {
            name: CompiledPolicy(name, policy)
            for name, policy in policies.items()
            if policy.shadow_of is None
        }
        for name, policy in policies.items():
            if policy.shadow_of is not None:  # the config checked it names an enforced one
                self._policies[policy.shadow_of].shadow = CompiledPolicy(name, policy)
        self._selection = selection

    @property
    def compiled(self) -> Mapping[str, CompiledPolicy]:
        return self._policies

    def selected_name(self, context: Mapping[str, str]) -> str:
        return context.get(self._selection.context_key, self._selection.default)

    def authorize(
        self,
        request: RequestAttributes,
        authn: Identity | AuthnFailure | None,
        trace: Trace | None = None,
    ) -> Decision:
        name = self.selected_name(request.context)
        policy = self._policies.get(name)
        if policy is None:
            if trace is not None:
                trace.policy = name
            return Decision(
                Outcome.FORBIDDEN, Reason.UNKNOWN_POLICY, f"no policy {name!r}", policy=name
            )
        if trace is not None:
            trace.policy = policy.name
        decision = evaluate(policy, request, authn, trace)
        if policy.shadow is None:
            return decision
        would = evaluate(policy.shadow, request, authn)
        verdict = ShadowVerdict(would.outcome, would.reason, would.rule, policy.shadow.name)
        if trace is not None:
            trace.shadow = verdict
        return replace(decision, shadow=verdict)


def _unauthenticated(
    reason: Reason, message: str, policy: str, rule: str = "", bearer_error: str = ""
) -> Decision:
    return Decision(
        Outcome.UNAUTHENTICATED,
        reason,
        message,
        rule=rule,
        policy=policy,
        bearer_error=bearer_error,
    )


def evaluate(
    policy: CompiledPolicy,
    request: RequestAttributes,
    authn: Identity | AuthnFailure | None,
    trace: Trace | None = None,
) -> Decision:
    if isinstance(authn, AuthnFailure):
        return _unauthenticated(
            authn.reason, authn.message, policy.name, bearer_error=authn.bearer_error
        )
    identity = authn
    try:
        path = canonical_path_cached(request.path)
        host = canonical_host_cached(request.host)
    except (AmbiguousPath, AmbiguousHost) as error:
        return Decision(
            Outcome.FORBIDDEN, Reason.BAD_REQUEST, str(error), policy=policy.name, identity=identity
        )
    if not host and policy.host_scoped:
        return Decision(
            Outcome.FORBIDDEN,
            Reason.BAD_REQUEST,
            "request has no host, and the policy has host-scoped rules",
            policy=policy.name,
            identity=identity,
        )
    if trace is not None:
        trace.path = path
    method = request.method.upper()
    decision = _first_match(policy, request, method, host, path, identity, trace)
    if ";" in path and decision.allowed:
        # A Servlet container reads `/admin;x/users` as /admin/users, a proxy or another
        # server as a path under `/admin;x/`. Allow only what both readings allow.
        cut = without_parameters(path)
        if trace is not None:
            why = "a Servlet container cuts ;parameters: this reading must allow too"
            trace.rules.append(RuleTrace(f"(read as {cut})", False, why))
        as_cut = _first_match(policy, request, method, host, cut, identity, trace)
        if not as_cut.allowed:
            return as_cut
    return decision


def _first_match(
    policy: CompiledPolicy,
    request: RequestAttributes,
    method: str,
    host: str,
    path: str,
    identity: Identity | None,
    trace: Trace | None,
) -> Decision:
    seen: dict[str, object] | None = None  # built once, for the first rule with a condition
    # Check walks the rules known to apply; explain walks all, saying why each does or not.
    for rule in policy.rules if trace is not None else policy.applicable(method, host, path):
        if trace is not None:
            missed = rule.mismatch(method, host, path)
            if missed is not None:
                why = rule.why_not(missed, method, host, path)
                trace.rules.append(RuleTrace(rule.name, False, why))
                continue
        if rule.condition is not None:
            if seen is None:
                seen = variables(request, identity, policy.condition_fields)
            result = rule.condition.evaluate(seen)
            if trace is not None:
                trace.conditions.append(
                    ConditionTrace(rule.name, rule.condition.source, result.shown)
                )
            if not result.holds:
                if trace is not None:
                    why = f"when: {rule.condition.source} is {result.shown}"
                    trace.rules.append(RuleTrace(rule.name, False, why))
                continue
        decision = _apply(rule, policy.name, identity, request.peer_principal)
        if trace is not None:
            trace.rules.append(RuleTrace(rule.name, True, decision.message, decided=True))
        return decision
    return Decision(
        Outcome.FORBIDDEN,
        Reason.NO_MATCHING_RULE,
        "no rule allows this request",
        policy=policy.name,
        identity=identity,
    )


def _apply(rule: CompiledRule, policy: str, identity: Identity | None, peer: str) -> Decision:
    if rule.deny:
        return Decision(
            Outcome.FORBIDDEN, Reason.DENIED_BY_RULE, "denied by rule", rule.name, policy, identity
        )
    if rule.allow == "anonymous":
        reason = Reason.ALLOWED if identity else Reason.ANONYMOUS_ALLOWED
        return Decision(Outcome.ALLOW, reason, "open to anyone", rule.name, policy, identity)
    if identity is None:
        return _unauthenticated(
            Reason.AUTHENTICATION_REQUIRED, "authentication required", policy, rule.name
        )
    unmet = rule.unmet(identity, peer)
    if unmet is not None:
        reason, message = unmet
        return Decision(Outcome.FORBIDDEN, reason, message, rule.name, policy, identity)
    return Decision(Outcome.ALLOW, Reason.ALLOWED, "requirements met", rule.name, policy, identity)


__all__ = [
    "CompiledPolicy",
    "ConditionError",
    "ConditionTrace",
    "PolicySet",
    "RuleTrace",
    "Trace",
    "evaluate",
]
