"""`authz-service serve | check-config | explain | hash-key`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from authz_service.cli.admin import add_admin_parser, run_admin
from authz_service.cli.offline import EXIT_DENIED, check_config, check_descriptors, explain
from authz_service.cli.policy_test_output import add_test_parser, run_tests
from authz_service.cli.replay_output import add_replay_parser, run_replay
from authz_service.cli.rlqs_commands import COMMANDS as RLQS_COMMANDS
from authz_service.cli.rlqs_commands import add_rlqs_parsers, run_rlqs
from authz_service.config.loader import ConfigError, load_config_file
from authz_service.config.secrets import check_secrets
from authz_service.preflight.ports import ListenError, check_all
from authz_service.schema.secret_digest import secret_digest


def _parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        # Not echoed: the text is usually a credential (a token or an API key).
        raise argparse.ArgumentTypeError("expected 'name: value' (the value is not shown)")
    return name.strip().lower(), value.strip()


def _version() -> str:
    try:
        return version("authz-service")
    except PackageNotFoundError:  # run from a source tree without installing
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="authz-service", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve ext_authz over gRPC")
    serve.add_argument("--config", required=True, help="YAML config file")
    serve.add_argument("--listen", help="override server.listen (host:port)")
    serve.add_argument("--admin-listen", help="override admin.listen (host:port)")
    serve.add_argument("--metrics-listen", help="override telemetry.metrics.listen (host:port)")
    serve.add_argument("--http-listen", help="override http_check.listen (host:port)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="serving processes; worker i listens on the base port + i",
    )
    serve.add_argument(
        "--loop",
        choices=["auto", "uvloop", "asyncio"],
        help="override server.event_loop (auto: uvloop when installed)",
    )
    serve.add_argument("--log-level", default="INFO")

    check = commands.add_parser("check-config", help="validate a config file and exit 0/1")
    check.add_argument("config")
    check.add_argument(
        "--map-path",
        action="append",
        default=[],
        metavar="FROM=TO",
        help="read a path the config names under FROM (e.g. a container's /etc/authz-limits) "
        "from TO on this machine",
    )

    explain = commands.add_parser("explain", help="show the decision for a described request")
    explain.add_argument("--config", required=True)
    explain.add_argument("--method", default="GET")
    explain.add_argument("--host", default="localhost")
    explain.add_argument("--path", required=True)
    explain.add_argument("-H", "--header", action="append", default=[], type=_parse_header)
    explain.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="context_extensions entry, e.g. policy=internal",
    )
    explain.add_argument("--source-address", default="")
    explain.add_argument("--peer-principal", default="")
    explain.add_argument(
        "--token-from-env",
        metavar="VAR",
        help="send the bearer token held in environment variable VAR (never on the command line)",
    )
    explain.add_argument("--json", action="store_true")
    explain.add_argument(
        "--exit-code",
        action="store_true",
        help=f"exit {EXIT_DENIED} when the request is denied (0 when allowed)",
    )

    add_admin_parser(commands)
    add_test_parser(commands)
    add_replay_parser(commands)

    coverage = commands.add_parser(
        "check-descriptors",
        help="check that every rate-limit descriptor an Envoy config sends has a limit",
    )
    coverage.add_argument("--envoy", required=True, help="a rendered Envoy bootstrap YAML")
    source = coverage.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="the service config (its rate_limit section)")
    source.add_argument("--limits", help="a directory of envoyproxy/ratelimit YAML files")
    coverage.add_argument("--strict", action="store_true", help="warnings fail too")

    add_rlqs_parsers(commands)

    health = commands.add_parser("health", help="gRPC health check of a running service")
    health.add_argument("--address", default="127.0.0.1:9001")
    health.add_argument("--service", default="", help="service name ('' = the whole server)")
    health.add_argument("--timeout", type=float, default=2.0)
    health.add_argument("--tls-ca", help="CA file: connect with TLS")
    health.add_argument("--tls-cert", help="client certificate (mutual TLS)")
    health.add_argument("--tls-key", help="client key (mutual TLS)")

    hash_key = commands.add_parser("hash-key", help="hash an API key for the config (reads stdin)")
    hash_key.add_argument("--stdin", action="store_true", help="read the key from stdin")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:
        # `authz-service explain ... | head`: the reader left; end quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        return _serve(args)
    if args.command == "check-config":
        return check_config(args.config, args.map_path)
    if args.command == "explain":
        return asyncio.run(explain(args))
    if args.command == "hash-key":
        return _hash_key(args.stdin)
    if args.command == "admin":
        return run_admin(args)
    if args.command == "health":
        return _health(args)
    if args.command == "check-descriptors":
        return check_descriptors(args)
    if args.command in RLQS_COMMANDS:
        return run_rlqs(args)
    if args.command == "test":
        return run_tests(args)
    if args.command == "replay":
        return run_replay(args)
    return 2


def _serve(args: argparse.Namespace) -> int:
    from authz_service.process import event_loop_factory, serve

    if args.workers > 1:
        return _supervise(args)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        listens = (args.listen, args.admin_listen, args.metrics_listen, args.http_listen)
        choice = args.loop or load_config_file(args.config).config.server.event_loop
        loop_factory = event_loop_factory(choice)
        if loop_factory is None:
            print("error: server.event_loop is uvloop, which is not installed", file=sys.stderr)
            return 1
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(serve(args.config, *listens))
    except (ConfigError, ListenError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _supervise(args: argparse.Namespace) -> int:
    from authz_service.workers import Supervisor

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s supervisor: %(message)s")
    try:
        loaded = load_config_file(args.config)
        check_secrets(loaded)  # what every worker would fail on, once, before any starts
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    settings = loaded.config.server
    config = loaded.config
    # Per-process stores do not add up across workers: say so rather than surprise.
    if config.revocation.store == "memory":
        logging.warning(
            "revocation.store is memory: a token revoked through one worker's admin port stays "
            "valid on the other workers; use revocation.store: redis with --workers"
        )
    if config.rate_limit is not None and config.rate_limit.store == "memory":
        logging.warning(
            "rate_limit.store is memory: each of the %d workers counts its own quota "
            "(limits are effectively multiplied); use rate_limit.store: redis",
            args.workers,
        )
    try:
        supervisor = Supervisor(
            args.config,
            args.listen or settings.listen,
            args.workers,
            ["--log-level", args.log_level, *(["--loop", args.loop] if args.loop else [])],
            {
                "--admin-listen": args.admin_listen or config.admin.listen,
                "--metrics-listen": args.metrics_listen or config.telemetry.metrics.listen,
                "--http-listen": args.http_listen
                or (config.http_check.listen if config.http_check else None),
            },
        )
        check_all(supervisor.listens())
    except (ValueError, ListenError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return supervisor.run(settings.grace_period_s)


def _health(args: argparse.Namespace) -> int:
    """Exit 0 when the server answers SERVING (for Docker HEALTHCHECK and scripts)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from authz_service.grpc.tls import client_channel

    with client_channel(args.address, args.tls_ca, args.tls_cert, args.tls_key) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
        except grpc.RpcError as error:
            print(f"unhealthy: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(status)
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def _hash_key(from_stdin: bool) -> int:
    key = sys.stdin.readline().rstrip("\n") if from_stdin else getpass.getpass("API key: ")
    if not key:
        print("error: empty key", file=sys.stderr)
        return 1
    print(secret_digest(key))
    return 0
