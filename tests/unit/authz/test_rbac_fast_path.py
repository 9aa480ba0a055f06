"""Check's indexed rule evaluation and explain's full scan never disagree.

Both ask each rule the same question (`CompiledRule.mismatch`); explain also puts the answer
into words (`why_not`).
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from authz_service.authz.hosts import canonical_host
from authz_service.authz.rbac import PolicySet
from authz_service.config.loader import load_config_file

LOCAL = Path(__file__).resolve().parents[3] / "config" / "local.yaml"
POLICIES = load_config_file(LOCAL).config.policies
RULES = [
    rule
    for name, policy in PolicySet(
        POLICIES, load_config_file(LOCAL).config.policy_selection
    ).compiled.items()
    for rule in policy.rules
]

segments = st.sampled_from(["public", "admin", "api", "internal", "reports", "downloads", "x", ""])


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
    host=st.sampled_from(["api.local", "api.local:443", "[::1]:8443", "other"]),
    parts=st.lists(segments, min_size=0, max_size=4),
)
def test_explain_names_the_part_of_the_request_a_rule_does_not_cover(
    method: str, host: str, parts: list[str]
) -> None:
    path = "/" + "/".join(parts)
    canonical = canonical_host(host)
    for rule in RULES:
        missed = rule.mismatch(method, canonical, path)
        if missed is not None:
            assert rule.why_not(missed, method, canonical, path).startswith(missed.value)


SHAPES = [
    {"name": "exact", "match": {"paths": [{"exact": "/api"}]}, "allow": "anonymous"},
    {"name": "root", "match": {"paths": [{"exact": "/"}]}, "allow": "anonymous"},
    {"name": "loose-prefix", "match": {"paths": [{"prefix": "/ap"}]}, "deny": True},
    {"name": "glob", "match": {"paths": [{"glob": "/x/*/items/*"}]}, "allow": "authenticated"},
    {"name": "wild-glob", "match": {"paths": [{"glob": "/*/admin"}]}, "deny": True},
    {"name": "host", "match": {"hosts": ["*.internal"]}, "allow": "anonymous"},
    {
        "name": "methods",
        "match": {"methods": ["DELETE"], "paths": [{"prefix": "/api/"}]},
        "deny": True,
    },
    {
        "name": "prefix",
        "match": {"paths": [{"prefix": "/api/"}, {"prefix": "/x/"}]},
        "allow": "authenticated",
    },
    {"name": "catch-all", "match": {}, "allow": "authenticated"},
]


@settings(max_examples=300, deadline=None)
@given(
    order=st.permutations(range(len(SHAPES))),
    method=st.sampled_from(["GET", "DELETE"]),
    host=st.sampled_from(["a.internal", "api.local:8443"]),
    parts=st.lists(
        st.sampled_from(["api", "ap", "apis", "x", "admin", "items", "1", ""]), max_size=4
    ),
)
def test_indexed_evaluation_decides_like_a_full_scan(
    order: list[int], method: str, host: str, parts: list[str]
) -> None:
    from authz_service.authz.rbac import CompiledPolicy, Trace, evaluate
    from authz_service.decisions import RequestAttributes
    from authz_service.schema import Policy

    policy = CompiledPolicy("p", Policy.model_validate({"rules": [SHAPES[i] for i in order]}))
    request = RequestAttributes(method=method, host=host, path="/" + "/".join(parts))

    indexed = evaluate(policy, request, None)
    scanned = evaluate(policy, request, None, Trace())

    assert (indexed.outcome, indexed.rule, indexed.reason) == (
        scanned.outcome,
        scanned.rule,
        scanned.reason,
    )
