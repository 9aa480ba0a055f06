"""Check's fast rule test (`applies`) and explain's (`match`) never disagree."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from authz_service.authz.rbac import PolicySet
from authz_service.config.loader import load_config

LOCAL = Path(__file__).resolve().parents[3] / "config" / "local.yaml"
POLICIES = load_config(LOCAL).config.policies
RULES = [
    rule
    for name, policy in PolicySet(
        POLICIES, load_config(LOCAL).config.policy_selection
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
def test_applies_agrees_with_match(method: str, host: str, parts: list[str]) -> None:
    path = "/" + "/".join(parts)
    for rule in RULES:
        assert rule.applies(method, host, path) == (rule.match(method, host, path) is None)
