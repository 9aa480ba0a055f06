"""`authz-service rlqs-filter` (render Envoy's rate_limit_quota filters from the config) and
`authz-service check-rlqs` (check an Envoy config's filters against Envoy 1.40 and our limits)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from authz_service.cli.rlqs_check import check_filters, find_filters
from authz_service.cli.rlqs_render import quota_filters
from authz_service.config.loader import ConfigError, LoadedConfig, load_config_file
from authz_service.ratelimit.rules import rules_of_loaded_config

COMMANDS = ("rlqs-filter", "check-rlqs")


def add_rlqs_parsers(commands: Any) -> None:
    render = commands.add_parser(
        "rlqs-filter",
        help="print Envoy rate_limit_quota filters for the config's quota_service section",
    )
    render.add_argument("--config", required=True, help="the service config")
    render.add_argument(
        "--cluster", default="authz_service", help="Envoy cluster of this service (gRPC)"
    )
    render.add_argument("--json", action="store_true", help="JSON instead of YAML")

    check = commands.add_parser(
        "check-rlqs",
        help="check an Envoy config's rate_limit_quota filters (Envoy 1.40, our limits)",
    )
    check.add_argument("--envoy", required=True, help="a rendered Envoy bootstrap YAML")
    check.add_argument("--config", required=True, help="the service config (its limits)")
    check.add_argument("--strict", action="store_true", help="warnings fail too")


def run_rlqs(args: argparse.Namespace) -> int:
    try:
        loaded = load_config_file(args.config)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.command == "rlqs-filter":
        return _render(loaded, args.cluster, args.json)
    return _check(loaded, Path(args.envoy), args.strict)


def _render(loaded: LoadedConfig, cluster: str, as_json: bool) -> int:
    try:
        filters = quota_filters(loaded.config, cluster)
    except ValueError as error:
        print(f"error: {loaded.path}: {error}", file=sys.stderr)
        return 1
    document = {"http_filters": filters}
    if as_json:
        print(json.dumps(document, indent=2))
    else:
        print(
            "# Put these after envoy.filters.http.ext_authz (they read the identity headers it"
            f"\n# sets), with a cluster {cluster!r} speaking HTTP/2 to this service.\n"
            + yaml.safe_dump(document, sort_keys=False),
            end="",
        )
    return 0


def _check(loaded: LoadedConfig, envoy: Path, strict: bool) -> int:
    try:
        limits = rules_of_loaded_config(loaded)
        bootstrap = yaml.safe_load(envoy.read_text())
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (OSError, yaml.YAMLError) as error:
        print(f"error: {envoy}: cannot read: {error}", file=sys.stderr)
        return 1
    if limits is None:
        print(f"error: {loaded.path}: no rate_limit section", file=sys.stderr)
        return 1
    if not isinstance(bootstrap, dict):
        print(f"error: {envoy}: not a YAML mapping", file=sys.stderr)
        return 1
    quota = loaded.config.quota_service
    filters = list(find_filters(bootstrap))
    findings = check_filters(filters, limits, quota.domain if quota is not None else None)
    for finding in findings:
        print(finding)
    errors = sum(f.severity == "error" for f in findings)
    buckets = sum(len(f.settings) for f in filters)
    print(
        f"{len(filters)} rate_limit_quota filters, {buckets} buckets checked: "
        f"{errors} errors, {len(findings) - errors} warnings"
    )
    return 1 if errors or (strict and len(findings) > errors) else 0
