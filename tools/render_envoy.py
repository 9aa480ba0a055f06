"""Fill the ${NAME} placeholders of an envoy/ template: one config for every deployment.

    python -m tools.render_envoy --out FILE --set PUBLIC_PORT=8443     # any values
    python -m tools.render_envoy --target compose                      # rewrite a committed file
    python -m tools.render_envoy --check                               # committed files current?

The committed files for docker-compose and the Kubernetes sidecar example are renders of the
same template with the values in TARGETS; tests/e2e/test_gateway_config.py fails when one of
them differs from a fresh render, so a change to envoy/envoy.yaml is made once and re-rendered.
"""

from __future__ import annotations

import argparse
import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = REPO_ROOT / "envoy" / "envoy.yaml"

LOCAL_DEFAULTS: Mapping[str, str] = {
    "ADMIN_PORT": "9901",
    "LISTEN_ADDRESS": "127.0.0.1",
    "INTERNAL_LISTEN_ADDRESS": "127.0.0.1",
    "METRICS_LISTEN_ADDRESS": "127.0.0.1",
    "PUBLIC_PORT": "10000",  # HTTPS
    "PUBLIC_HTTP_PORT": "10080",  # redirects to HTTPS
    "INTERNAL_PORT": "10001",
    "METRICS_PORT": "10002",
    "AUTHZ_HOST": "127.0.0.1",
    "AUTHZ_PORT": "9001",
    "AUTHZ_TLS": "false",
    "AUTHZ_TLS_SERVER_NAME": "authz-service",
    "UPSTREAM_HOST": "127.0.0.1",
    "UPSTREAM_PORT": "8080",
    "UPSTREAM_V2_HOST": "127.0.0.1",
    "UPSTREAM_V2_PORT": "8082",
    "OTLP_HOST": "127.0.0.1",
    "OTLP_PORT": "4317",
    "TLS_DIR": str(REPO_ROOT / ".stack" / "tls"),
    "MAX_HEAP_BYTES": str(1024 * 1024 * 1024),
    # The public listener's wait for a client's headers, and for the upstream's answer.
    "REQUEST_HEADERS_TIMEOUT": "10s",
    "UPSTREAM_TIMEOUT": "15s",
}


@dataclass(frozen=True)
class Target:
    """A committed render: where it lives and the values that differ from LOCAL_DEFAULTS."""

    out: Path
    values: Mapping[str, str]
    note: str


TARGETS: Mapping[str, Target] = {
    "compose": Target(
        REPO_ROOT / "envoy" / "generated" / "compose.yaml",
        {
            "LISTEN_ADDRESS": "0.0.0.0",
            "INTERNAL_LISTEN_ADDRESS": "0.0.0.0",
            "METRICS_LISTEN_ADDRESS": "0.0.0.0",
            "PUBLIC_PORT": "8443",
            "PUBLIC_HTTP_PORT": "8080",
            "INTERNAL_PORT": "10001",
            "METRICS_PORT": "9902",
            "AUTHZ_HOST": "authz-service",
            "AUTHZ_PORT": "9001",
            "UPSTREAM_HOST": "upstream-v1",
            "UPSTREAM_PORT": "8080",
            "UPSTREAM_V2_HOST": "upstream-v2",
            "UPSTREAM_V2_PORT": "8080",
            "OTLP_HOST": "jaeger",
            "OTLP_PORT": "4317",
            "TLS_DIR": "/etc/envoy/certs",
            # The envoy service's mem_limit in docker-compose.yml is 512m.
            "MAX_HEAP_BYTES": str(400 * 1024 * 1024),
        },
        "docker-compose.yml mounts this file as the envoy service's config.",
    ),
    "kubernetes": Target(
        REPO_ROOT / "deploy" / "kubernetes" / "envoy-sidecar" / "envoy.yaml",
        {
            "LISTEN_ADDRESS": "0.0.0.0",
            "INTERNAL_LISTEN_ADDRESS": "0.0.0.0",
            "METRICS_LISTEN_ADDRESS": "0.0.0.0",
            "PUBLIC_PORT": "8443",
            "PUBLIC_HTTP_PORT": "8000",
            "INTERNAL_PORT": "10001",
            "METRICS_PORT": "9902",
            # The headless Service: one DNS answer per pod, so Envoy spreads its HTTP/2
            # connections over every replica instead of pinning them to one ClusterIP.
            "AUTHZ_HOST": "authz-service-pods.authz.svc.cluster.local",
            "AUTHZ_PORT": "9001",
            # The application container in the same pod, and its canary Service.
            "UPSTREAM_HOST": "127.0.0.1",
            "UPSTREAM_PORT": "8080",
            "UPSTREAM_V2_HOST": "orders-v2.shop.svc.cluster.local",
            "UPSTREAM_V2_PORT": "8080",
            "OTLP_HOST": "otel-collector.observability.svc.cluster.local",
            "OTLP_PORT": "4317",
            "TLS_DIR": "/etc/envoy/certs",
            # The envoy container's memory limit in deployment.yaml is 512Mi.
            "MAX_HEAP_BYTES": str(400 * 1024 * 1024),
        },
        "deploy/kubernetes/envoy-sidecar/kustomization.yaml puts it in a ConfigMap.",
    ),
}


class RenderError(ValueError):
    """A value the template cannot take: an unknown name, a port that is not a port."""


def check_values(values: Mapping[str, object], template_text: str) -> None:
    """Refuse names the template does not have (a typo would silently keep the default) and
    ports that are not numbers in 1..65535 (Envoy would only say so at start)."""
    known = {
        match.group("named") or match.group("braced")
        for match in string.Template.pattern.finditer(template_text)
        if match.group("named") or match.group("braced")
    }
    unknown = sorted(set(values) - known)
    if unknown:
        raise RenderError(
            f"unknown name(s) {', '.join(unknown)}; the template has: {', '.join(sorted(known))}"
        )
    for key, value in values.items():
        if key.endswith("_PORT") and not (str(value).isdigit() and 0 < int(str(value)) < 65536):
            raise RenderError(f"{key}={value!r}: a port is a number from 1 to 65535")


def render(values: Mapping[str, object], template: Path = TEMPLATE) -> str:
    """The template with every placeholder filled; a missing value is an error, not a blank."""
    text = template.read_text()
    merged = {**LOCAL_DEFAULTS, **{key: str(value) for key, value in values.items()}}
    return string.Template(text).substitute(merged)


def render_target(name: str) -> str:
    target = TARGETS[name]
    header = (
        f"# GENERATED from envoy/envoy.yaml by `python -m tools.render_envoy --target {name}`:\n"
        f"# do not edit; change the template and re-render. {target.note}\n"
    )
    return header + render(target.values)


def stale_targets() -> list[str]:
    """Names of committed renders that differ from a fresh render of the template."""
    return [
        name
        for name, target in TARGETS.items()
        if not target.out.exists() or target.out.read_text() != render_target(name)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--target", choices=[*TARGETS, "all"], help="rewrite a committed render")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a committed render is stale"
    )
    args = parser.parse_args()
    if args.check:
        stale = stale_targets()
        for name in stale:
            print(
                f"{TARGETS[name].out.relative_to(REPO_ROOT)} is stale: "
                f"run python -m tools.render_envoy --target {name}",
                file=sys.stderr,
            )
        return 1 if stale else 0
    if args.target:
        for name in TARGETS if args.target == "all" else [args.target]:
            TARGETS[name].out.parent.mkdir(parents=True, exist_ok=True)
            TARGETS[name].out.write_text(render_target(name))
        return 0
    if args.out is None:
        parser.error("one of --out, --target or --check is required")
    malformed = [item for item in args.set if "=" not in item]
    if malformed:
        parser.error(f"--set takes NAME=VALUE, got {malformed[0]!r}")
    values = dict(item.split("=", 1) for item in args.set)
    try:
        check_values(values, args.template.read_text())
        args.out.write_text(render(values, args.template))
    except RenderError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
