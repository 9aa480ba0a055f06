"""`authz-service admin explain|status|reload|revoke|quota`: a client of the admin gRPC API."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import grpc
from google.protobuf import json_format

from authz_service.admin.v1 import admin_pb2, admin_pb2_grpc
from authz_service.cli.explain_output import lockout_lines, quota_lines
from authz_service.cli.quota_service_output import quota_service_lines
from authz_service.grpc.tls import client_channel
from authz_service.schema import UNIT_SECONDS
from authz_service.schema.secret_digest import secret_digest
from authz_service.services.explain_view import View


def add_admin_parser(commands: Any) -> None:
    admin = commands.add_parser("admin", help="talk to a running service's admin API")
    admin.add_argument("--address", default="127.0.0.1:9002", help="admin API host:port")
    admin.add_argument(
        "--token-env",
        default="AUTHZ_ADMIN_TOKEN",
        help="environment variable holding the admin token (never passed on the command line)",
    )
    admin.add_argument("--json", action="store_true", help="print the raw response as JSON")
    admin.add_argument("--tls-ca", help="CA file: connect with TLS (admin.tls)")
    admin.add_argument("--tls-cert", help="client certificate (mutual TLS)")
    admin.add_argument("--tls-key", help="client key (mutual TLS)")
    admin.add_argument("--timeout", type=float, default=5.0)
    actions = admin.add_subparsers(dest="action", required=True)
    # `--json` works before or after the action (`admin --json status`, `admin status --json`).
    json_after = argparse.ArgumentParser(add_help=False)
    json_after.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )

    explain = actions.add_parser(
        "explain", help="the decision for a described request", parents=[json_after]
    )
    explain.add_argument("--method", default="GET")
    explain.add_argument("--host", default="localhost")
    explain.add_argument("--path", required=True)
    explain.add_argument("-H", "--header", action="append", default=[])
    explain.add_argument(
        "--token-from-env", metavar="VAR", help="bearer token to evaluate, read from VAR"
    )
    explain.add_argument("--context", action="append", default=[], metavar="KEY=VALUE")
    explain.add_argument("--source-address", default="")
    explain.add_argument("--peer-principal", default="")

    actions.add_parser("status", help="config version, reloads, JWKS state", parents=[json_after])
    actions.add_parser("reload", help="reload the config file now", parents=[json_after])

    revoke = actions.add_parser(
        "revoke", help="revoke a token by jti, or a subject's tokens", parents=[json_after]
    )
    target = revoke.add_mutually_exclusive_group(required=True)
    target.add_argument("--jti")
    target.add_argument("--subject")
    target.add_argument(
        "--token-from-env",
        metavar="VAR",
        dest="revoke_token_env",
        help="an opaque token, read from this environment variable (never from the command "
        "line): revoked by its digest until --until",
    )
    revoke.add_argument(
        "--issuer", default="", help="subject: only this issuer's tokens (default: every issuer)"
    )
    revoke.add_argument("--until", type=float, default=0.0, help="jti: unix time the token expires")
    revoke.add_argument(
        "--before", type=float, default=0.0, help="subject: tokens issued before (unix)"
    )

    quota = actions.add_parser(
        "quota", help="read (or --reset) a descriptor's counters", parents=[json_after]
    )
    quota.add_argument("--domain", required=True)
    quota.add_argument("--entry", action="append", default=[], metavar="KEY=VALUE", required=True)
    quota.add_argument("--reset", action="store_true")


def run_admin(args: argparse.Namespace) -> int:
    if args.action == "explain" and args.token_from_env and not os.environ.get(args.token_from_env):
        # An unset variable would silently evaluate an anonymous request instead.
        print(
            f"error: --token-from-env: environment variable {args.token_from_env} is not set",
            file=sys.stderr,
        )
        return 2
    revoked = getattr(args, "revoke_token_env", None)
    if args.action == "revoke" and revoked and not os.environ.get(revoked):
        print(
            f"error: --token-from-env: environment variable {revoked} is not set", file=sys.stderr
        )
        return 2
    token = os.environ.get(args.token_env, "")
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with client_channel(args.address, args.tls_ca, args.tls_cert, args.tls_key) as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        try:
            response = _call(stub, args, metadata)
        except grpc.RpcError as error:
            print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    if args.json:
        print(json_format.MessageToJson(response, preserving_proto_field_name=True))
    else:
        reset = args.action == "quota" and args.reset
        print(_render("quota-reset" if reset else args.action, response))
    return 0


def _call(stub: Any, args: argparse.Namespace, metadata: Any) -> Any:
    timeout = args.timeout
    if args.action == "explain":
        request = admin_pb2.ExplainRequest(
            method=args.method,
            host=args.host,
            path=args.path,
            source_address=args.source_address,
            peer_principal=args.peer_principal,
            context_extensions=dict(item.partition("=")[::2] for item in args.context),
        )
        for header in args.header:
            name, _, value = header.partition(":")
            request.headers.add(name=name.strip(), value=value.strip())
        if args.token_from_env:
            request.token = os.environ[args.token_from_env]
        return stub.Explain(request, timeout=timeout, metadata=metadata)
    if args.action == "status":
        return stub.Status(admin_pb2.StatusRequest(), timeout=timeout, metadata=metadata)
    if args.action == "reload":
        return stub.Reload(admin_pb2.ReloadRequest(), timeout=timeout, metadata=metadata)
    if args.action == "revoke":
        if args.revoke_token_env:  # the digest goes over the wire, not the token
            digest = secret_digest(os.environ[args.revoke_token_env])
            request = admin_pb2.RevokeRequest(jti=digest, until_or_before_unix=args.until)
        elif args.jti:
            request = admin_pb2.RevokeRequest(jti=args.jti, until_or_before_unix=args.until)
        else:
            request = admin_pb2.RevokeRequest(
                subject=args.subject, issuer=args.issuer, until_or_before_unix=args.before
            )
        return stub.Revoke(request, timeout=timeout, metadata=metadata)
    entries = [
        admin_pb2.DescriptorEntry(key=key, value=value)
        for key, _, value in (item.partition("=") for item in args.entry)
    ]
    request = admin_pb2.QuotaRequest(domain=args.domain, entries=entries)
    method = stub.ResetQuota if args.reset else stub.GetQuota
    return method(request, timeout=timeout, metadata=metadata)


def _when(unix: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix)) if unix else "never"


def _lockout_view(response: Any) -> View | None:
    if not response.HasField("lockout"):
        return None
    lockout = response.lockout
    return {
        "locked": lockout.locked,
        "retry_after_seconds": lockout.retry_after_seconds,
        "failures_left": lockout.failures_left,
    }


def _quota_view(response: Any) -> View | None:
    if not response.quota_domain:
        return None
    descriptors = [
        {
            "entries": [{"key": e.key, "value": e.value} for e in quota.entries],
            "code": quota.code,
            "requests_per_unit": quota.requests_per_unit,
            "unit": quota.unit,
            "limit_name": quota.limit_name,
            "remaining": quota.remaining,
            "reset_in_seconds": quota.reset_in_seconds,
        }
        for quota in response.quotas
    ]
    return {
        "domain": response.quota_domain,
        "store_unavailable": response.quota_store_unavailable,
        "descriptors": descriptors,
    }


def _quota_service_views(usages: Any) -> list[View]:
    """QuotaServiceUsage messages as the views quota_service_lines prints."""
    views = []
    for usage in usages:
        views.append(
            {
                "entries": [{"key": e.key, "value": e.value} for e in usage.entries],
                "limit_name": usage.limit_name,
                "requests_per_unit": usage.requests_per_unit,
                "window_seconds": usage.window_seconds,
                "enforced": usage.enforced,
                "demand_per_second": usage.demand_per_second,
                "allowed": usage.allowed,
                "denied": usage.denied,
                "store_unavailable": usage.store_unavailable,
                "envoys": [
                    {
                        "envoy": e.envoy,
                        "peer": e.peer,
                        "demand_per_second": e.demand_per_second,
                        "share": e.share,
                        "allowed": e.allowed,
                        "denied": e.denied,
                        "expires_in_seconds": e.expires_in_seconds,
                    }
                    for e in usage.envoys
                ],
            }
        )
    return views


def _render(action: str, response: Any) -> str:
    if action == "explain":
        lines = [
            f"decision:   {response.decision.upper()} ({response.reason})",
            f"policy:     {response.policy or '-'}",
            f"rule:       {response.rule or '-'}",
            f"why:        {response.message}",
            f"credential: {response.credential}",
        ]
        if response.HasField("identity"):
            identity = response.identity
            lines.append(
                f"identity:   {identity.principal} via {identity.auth_method}, "
                f"roles {list(identity.roles)}"
            )
        lines.append("rules evaluated, in order:")
        for rule in response.rules:
            mark = "=>" if rule.decided else "  "
            lines.append(
                f"  {mark} {rule.rule}: {'matched' if rule.matched else 'skipped'}: {rule.why}"
            )
        lines.extend(lockout_lines(_lockout_view(response)))
        lines.extend(quota_lines(_quota_view(response)))
        lines.extend(quota_service_lines(_quota_service_views(response.quota_service)))
        return "\n".join(lines)
    if action == "status":
        lines = [
            f"config:     {response.config_path} version {response.version}, "
            f"loaded {_when(response.loaded_at_unix)}",
            f"reloads:    {response.reloads} ok, {response.failed_reloads} failed",
            f"last error: {response.last_error or '-'}",
            f"revocation: {response.revocation_store}",
        ]
        if response.restart_required:
            lines.append(f"restart to apply: {', '.join(response.restart_required)}")
        for jwks in response.jwks:
            lines.append(
                f"jwks {jwks.provider}: {len(jwks.key_ids)} keys, "
                f"refreshed {_when(jwks.last_refresh_unix)}, "
                f"last failure {_when(jwks.last_failure_unix)} {jwks.last_error}".rstrip()
            )
        return "\n".join(lines)
    if action == "reload":
        if response.error:
            return f"reload rejected, still on version {response.version}:\n{response.error}"
        done = f"{'reloaded' if response.changed else 'unchanged'}: version {response.version}"
        if response.restart_required:
            done += f"\nrestart needed to apply: {', '.join(response.restart_required)}"
        return done
    if action == "revoke":
        return f"revoked until {_when(response.expires_at_unix)}"
    lines = []
    for counter in response.counters:
        lines.append(
            f"{_limit_name(counter)}: {counter.used}/{counter.requests_per_unit} "
            f"per {_period(counter)}, {counter.remaining} left, "
            f"resets in {counter.reset_in_seconds:.1f}s"
        )
    if action == "quota-reset":
        names = [_limit_name(counter) for counter in response.counters]
        lines.append(f"reset {len(names)} limit{'s' * (len(names) != 1)}: {', '.join(names)}")
    if response.HasField("quota_service"):
        lines.extend(quota_service_lines(_quota_service_views([response.quota_service])))
    return "\n".join(lines) or "(no counters)"


def _limit_name(counter: Any) -> str:
    return str(counter.limit_name) or "(unnamed)"


def _period(counter: Any) -> str:
    """`minute`, or the limit's own window (`30s`) when it is not one unit long."""
    window = counter.window_seconds
    if not window or UNIT_SECONDS.get(counter.unit) == window:
        return str(counter.unit)
    return f"{window:g}s"


__all__ = ["add_admin_parser", "run_admin"]
