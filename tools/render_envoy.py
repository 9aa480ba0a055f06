"""Fill the ${NAME} placeholders of an envoy/ template: one config for every deployment.

    python -m tools.render_envoy --out FILE --set PUBLIC_PORT=8443     # any values
    python -m tools.render_envoy --target compose                      # rewrite a committed file
    python -m tools.render_envoy --check                               # committed files current?
    python -m tools.render_envoy --out FILE --quota-mode rlqs          # quota mode (quota_modes.py)
    python -m tools.render_envoy --out FILE --transport http           # envoy_transports.py

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
# The service config whose quota_service section the RLQS mode's filters are rendered from.
LOCAL_SERVICE_CONFIG = REPO_ROOT / "config" / "local.yaml"

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
    "AUTHZ_HTTP_PORT": "9003",  # http_check.listen (transport http)
    "AUTHZ_METRICS_PORT": "9102",  # telemetry.metrics.listen: /readyz (transport http)
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


# docker-compose's service names and ports (both quota modes of the compose stack).
_COMPOSE_VALUES: Mapping[str, str] = {
    "LISTEN_ADDRESS": "0.0.0.0",
    "INTERNAL_LISTEN_ADDRESS": "0.0.0.0",
    "METRICS_LISTEN_ADDRESS": "0.0.0.0",
    "PUBLIC_PORT": "8443",
    "PUBLIC_HTTP_PORT": "8080",
    "INTERNAL_PORT": "10001",
    "METRICS_PORT": "9902",
    "AUTHZ_HOST": "authz-service",
    "AUTHZ_PORT": "9001",
    "AUTHZ_HTTP_PORT": "9003",
    "AUTHZ_METRICS_PORT": "9102",
    "UPSTREAM_HOST": "upstream-v1",
    "UPSTREAM_PORT": "8080",
    "UPSTREAM_V2_HOST": "upstream-v2",
    "UPSTREAM_V2_PORT": "8080",
    "OTLP_HOST": "jaeger",
    "OTLP_PORT": "4317",
    "TLS_DIR": "/etc/envoy/certs",
    # The envoy service's mem_limit in docker-compose.yml is 512m.
    "MAX_HEAP_BYTES": str(400 * 1024 * 1024),
}


@dataclass(frozen=True)
class Target:
    """A committed render: where it lives and the values that differ from LOCAL_DEFAULTS."""

    out: Path
    values: Mapping[str, str]
    note: str
    quota_mode: str = "classic"  # tools/quota_modes.py
    service_config: Path = LOCAL_SERVICE_CONFIG
    transport: str = "grpc"  # tools/envoy_transports.py


TARGETS: Mapping[str, Target] = {
    "compose": Target(
        REPO_ROOT / "envoy" / "generated" / "compose.yaml",
        _COMPOSE_VALUES,
        "docker-compose.yml mounts this file as the envoy service's config.",
    ),
    "compose-rlqs": Target(
        REPO_ROOT / "envoy" / "generated" / "compose-rlqs.yaml",
        _COMPOSE_VALUES,
        "compose/quota-rlqs.yml mounts it instead of compose.yaml (RLQS quota mode).",
        quota_mode="rlqs",
        service_config=REPO_ROOT / "compose" / "authz" / "config.yaml",
    ),
    "compose-http": Target(
        REPO_ROOT / "envoy" / "generated" / "compose-http.yaml",
        _COMPOSE_VALUES,
        "compose/transport-http.yml mounts it instead of compose.yaml (HTTP ext_authz).",
        service_config=REPO_ROOT / "compose" / "authz" / "config.yaml",
        transport="http",
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
    ports that are not numbers in 1..65535 (Envoy would only say so at start). The HTTP
    transport's fragment counts as part of the template."""
    from tools.envoy_transports import HTTP_FRAGMENT

    known = {
        match.group("named") or match.group("braced")
        for text in (template_text, HTTP_FRAGMENT.read_text())
        for match in string.Template.pattern.finditer(text)
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


def render_mode(
    values: Mapping[str, object],
    quota_mode: str = "classic",
    service_config: Path = LOCAL_SERVICE_CONFIG,
    template: Path = TEMPLATE,
    transport: str = "grpc",
) -> str:
    """The template rendered in a quota mode and a transport (classic and grpc: `render`
    unchanged); the service config gives the RLQS filters and the HTTP identity headers."""
    from tools.envoy_transports import apply_transport
    from tools.quota_modes import apply_quota_mode

    rendered = apply_quota_mode(render(values, template), quota_mode, service_config)
    merged = {**LOCAL_DEFAULTS, **{key: str(value) for key, value in values.items()}}
    return apply_transport(rendered, transport, merged, service_config)


def render_target(name: str) -> str:
    target = TARGETS[name]
    header = (
        f"# GENERATED from envoy/envoy.yaml by `python -m tools.render_envoy --target {name}`:\n"
        f"# do not edit; change the template and re-render. {target.note}\n"
    )
    return header + render_mode(
        target.values, target.quota_mode, target.service_config, transport=target.transport
    )


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
    parser.add_argument("--quota-mode", choices=("classic", "one-call", "rlqs"), default="classic")
    parser.add_argument(
        "--transport",
        choices=("grpc", "http"),
        default="grpc",
        help="how ext_authz asks the service: gRPC Check, or the HTTP check endpoint",
    )
    parser.add_argument(
        "--service-config",
        type=Path,
        default=LOCAL_SERVICE_CONFIG,
        help="the service config whose quota_service the rlqs mode renders (and whose "
        "identity headers the http transport copies upstream)",
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
    from tools.envoy_transports import TransportError

    try:
        check_values(values, args.template.read_text())
        args.out.write_text(
            render_mode(values, args.quota_mode, args.service_config, args.template, args.transport)
        )
    except (RenderError, TransportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
