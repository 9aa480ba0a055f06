"""Render the Envoy configs of scenario 3 (benchmarks/envoy/*.yaml) and validate them.

python -m benchmarks.envoy_configs --validate   # envoy --mode validate on every variant
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from authz_service.cli.rlqs_render import quota_filters
from authz_service.schema import Config
from benchmarks import fixtures
from tools.dev_idp import DevIdentityProvider
from tools.processes import envoy_binary
from tools.render_envoy import render

ENVOY_DIR = Path(__file__).resolve().parent / "envoy"
VARIANTS = (
    "plain",
    "ext_authz",
    "ext_authz_http",
    "ext_authz_ratelimit",
    "ext_authz_rlqs",
    "native",
)
_JWT = "envoy.filters.http.jwt_authn"


def _claim(path: list[str], value: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {
            "filter": _JWT,
            "path": [{"key": key} for key in ["jwt_payload", *path]],
            "value": value,
        }
    }


def _has_role(role: str) -> dict[str, Any]:
    return _claim(
        ["realm_access", "roles"], {"list_match": {"one_of": {"string_match": {"exact": role}}}}
    )


def _has_scope(scope: str) -> dict[str, Any]:
    pattern = f"(^|.* ){re.escape(scope)}( .*|$)"
    return _claim(["scope"], {"string_match": {"safe_regex": {"regex": pattern}}})


def _path(match: Mapping[str, str]) -> dict[str, Any]:
    if "exact" in match:
        return {"url_path": {"path": {"exact": match["exact"]}}}
    if "prefix" in match:
        return {"url_path": {"path": {"prefix": match["prefix"]}}}
    regex = "^" + "[^/]*".join(re.escape(part) for part in match["glob"].split("*")) + "$"
    return {"url_path": {"path": {"safe_regex": {"regex": regex}}}}


def _any_of(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return items[0] if len(items) == 1 else {key: {"rules" if key == "or_rules" else "ids": items}}


def _permission(match: Mapping[str, Any]) -> dict[str, Any]:
    parts = []
    if match.get("hosts"):
        hosts = [
            {"header": {"name": ":authority", "string_match": {"exact": h}}} for h in match["hosts"]
        ]
        parts.append(_any_of(hosts, "or_rules"))
    if match.get("methods"):
        methods = [
            {"header": {"name": ":method", "string_match": {"exact": m}}} for m in match["methods"]
        ]
        parts.append(_any_of(methods, "or_rules"))
    if match.get("paths"):
        parts.append(_any_of([_path(p) for p in match["paths"]], "or_rules"))
    if not parts:
        return {"any": True}
    return parts[0] if len(parts) == 1 else {"and_rules": {"rules": parts}}


def _principal(allow: Any) -> dict[str, Any]:
    if allow == "anonymous":
        return {"any": True}
    if allow == "authenticated":
        return _claim(["sub"], {"present_match": True})
    ids = []
    if allow.get("roles_any"):
        ids.append(_any_of([_has_role(r) for r in allow["roles_any"]], "or_ids"))
    ids.extend(_has_role(r) for r in allow.get("roles_all", []))
    ids.extend(_has_scope(s) for s in allow.get("scopes_all", []))
    return ids[0] if len(ids) == 1 else {"and_ids": {"ids": ids}}


def rbac_policies(rules: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Our RBAC rules as Envoy RBAC policies: (deny policies, allow policies)."""
    deny: dict[str, Any] = {}
    allow: dict[str, Any] = {}
    for rule in rules:
        permission = [_permission(rule.get("match", {}))]
        if rule.get("deny"):
            deny[rule["name"]] = {"permissions": permission, "principals": [{"any": True}]}
        else:
            allow[rule["name"]] = {
                "permissions": permission,
                "principals": [_principal(rule["allow"])],
            }
    return deny, allow


def with_rlqs_filters(rendered: str) -> str:
    """ext_authz.yaml plus the rate_limit_quota filters `authz-service rlqs-filter` renders
    for the scenario's three buckets (fixtures.rlqs_section), after ext_authz, as in the
    gateway's RLQS quota mode; their RLQS stream goes to the ext_authz cluster."""
    quota = fixtures.rlqs_section("redis://unused")["quota_service"]
    config = Config.model_validate(
        {"policies": {"default": {"rules": []}}, "rate_limit": {}, "quota_service": quota}
    )
    document = yaml.safe_load(rendered)
    for listener in document["static_resources"]["listeners"]:
        manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
        names = [item["name"] for item in manager["http_filters"]]
        if "envoy.filters.http.ext_authz" in names:
            at = names.index("envoy.filters.http.ext_authz") + 1
            manager["http_filters"][at:at] = quota_filters(config, cluster="authz")
    return yaml.safe_dump(document, sort_keys=False)


def render_variant(variant: str, values: Mapping[str, object], jwks: Mapping[str, Any]) -> str:
    """One of VARIANTS with ports (ADMIN_PORT, INGRESS_PORT, BACKEND_PORT, AUTHZ_PORT,
    RATELIMIT_PORT) filled in; `jwks` is the issuer's key set (used by the native variant)."""
    deny, allow = rbac_policies(fixtures.policy_rules())
    filled = {
        "AUTHZ_PORT": 0,
        "RATELIMIT_PORT": 0,
        "ISSUER": json.dumps(DevIdentityProvider.issuer),
        "AUDIENCE": json.dumps(DevIdentityProvider.audience),
        "JWKS_JSON": json.dumps(json.dumps(dict(jwks))),
        "RBAC_DENY_POLICIES": json.dumps(deny),
        "RBAC_ALLOW_POLICIES": json.dumps(allow),
        **values,
    }
    if variant == "ext_authz_rlqs":
        return with_rlqs_filters(render(filled, ENVOY_DIR / "ext_authz.yaml"))
    return render(filled, ENVOY_DIR / f"{variant}.yaml")


def validate(path: Path) -> str | None:
    """None when `envoy --mode validate` accepts the file, else its complaint."""
    binary = envoy_binary()
    if binary is None:
        return "envoy is not installed"
    done = subprocess.run(
        [binary, "--mode", "validate", "-c", str(path), "--log-level", "error"],
        capture_output=True,
        text=True,
        check=False,
    )
    return None if done.returncode == 0 else (done.stdout + done.stderr)[-2000:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--validate", action="store_true", required=True)
    parser.parse_args()
    jwks = DevIdentityProvider().jwks()
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for index, variant in enumerate(VARIANTS):
            path = Path(tmp) / f"{variant}.yaml"
            ports = {
                "ADMIN_PORT": 19000 + index,
                "INGRESS_PORT": 19100 + index,
                "BACKEND_PORT": 19200 + index,
                "AUTHZ_PORT": 19300,
                "RATELIMIT_PORT": 19300,
            }
            path.write_text(render_variant(variant, ports, jwks))
            problem = validate(path)
            print(f"{variant}: {'OK' if problem is None else 'INVALID'}")
            if problem is not None:
                print(problem, file=sys.stderr)
                failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
