"""The commands that read a config file offline: check-config, explain, check-descriptors."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from authz_service.authn.jwks_registry import JwksRegistry
from authz_service.cli.explain_output import explanation_json, explanation_text
from authz_service.cli.quota_service_output import quota_service_buckets, quota_service_lines
from authz_service.config.loader import ConfigError, load_config_file
from authz_service.decisions import RequestAttributes
from authz_service.services.check import CheckService
from authz_service.services.compiled_config import QuotaStoreHolder, compile_config

# `explain --exit-code`: a denied request (0 allowed; 1 a bad config; 2 a usage error).
EXIT_DENIED = 3


def check_descriptors(args: argparse.Namespace) -> int:
    from pathlib import Path

    from authz_service.cli.envoy_descriptors import descriptor_shapes, load_bootstrap
    from authz_service.ratelimit.coverage import describe_coverage
    from authz_service.ratelimit.rules import load_rate_limit_rules, rules_of_loaded_config

    try:
        if args.limits:
            limits = load_rate_limit_rules(Path(args.limits))
        else:
            configured = rules_of_loaded_config(load_config_file(args.config))
            if configured is None:
                print(f"error: {args.config}: no rate_limit section", file=sys.stderr)
                return 1
            limits = configured
        shapes = descriptor_shapes(load_bootstrap(Path(args.envoy)))
    except ConfigError as error:  # the rate-limit files or the Envoy file (EnvoyConfigError)
        print(f"error: {error}", file=sys.stderr)
        return 1
    findings = describe_coverage(shapes, limits)
    for finding in findings:
        print(finding)
    errors = sum(f.severity == "error" for f in findings)
    warnings = sum(f.severity == "warning" for f in findings)
    print(f"{len(findings)} descriptors checked: {errors} errors, {warnings} warnings")
    return 1 if errors or (args.strict and warnings) else 0


def check_config(path: str, map_paths: Sequence[str] = ()) -> int:
    from authz_service.config.path_map import parse_path_maps, remap_paths

    try:
        loaded = remap_paths(load_config_file(path), parse_path_maps(map_paths))
        compile_config(loaded, JwksRegistry())
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    config = loaded.config
    print(
        f"{path}: OK (version {loaded.digest[:12]}; {len(config.jwt_providers)} JWT providers, "
        f"{len(config.api_keys.keys)} API keys, policies: {', '.join(sorted(config.policies))})"
    )
    return 0


def token_from_env(name: str) -> str:
    """The token held in environment variable `name`; unset or empty is a usage error, never
    an anonymous evaluation that would look like the token's answer."""
    token = os.environ.get(name, "")
    if not token:
        print(f"error: --token-from-env: environment variable {name} is not set", file=sys.stderr)
        raise SystemExit(2)
    return token


async def explain(args: argparse.Namespace) -> int:
    headers = dict(args.header)
    if args.token_from_env:
        headers["authorization"] = f"Bearer {token_from_env(args.token_from_env)}"
    registry = JwksRegistry()
    stores = QuotaStoreHolder()
    try:
        compiled = compile_config(load_config_file(args.config), registry, stores)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    context = dict(item.partition("=")[::2] for item in args.context)
    request = RequestAttributes(
        method=args.method.upper(),
        host=args.host,
        path=args.path,
        headers=headers,
        source_address=args.source_address,
        peer_principal=args.peer_principal,
        context=context,
    )
    try:
        explanation = await CheckService(lambda: compiled).explain(request)
        # The quota service's buckets, read from its usage store (Redis: what every replica
        # sees; the memory store of this fresh process knows no Envoy).
        buckets = await quota_service_buckets(compiled, request, explanation.decision)
    finally:
        await registry.close()
        await stores.close()
    if args.json:
        document = json.loads(explanation_json(explanation))
        document["quota_service"] = buckets
        print(json.dumps(document, indent=2))
    else:
        print("\n".join([explanation_text(explanation), *quota_service_lines(buckets)]))
    denied = explanation.decision.outcome.value != "allow"
    return EXIT_DENIED if args.exit_code and denied else 0
