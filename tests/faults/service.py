"""Service configs and real service processes for the fault tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.grpc.conftest import service_config
from tests.support.authz_config import write_config
from tools.dev_idp import DevIdentityProvider
from tools.processes import Process, free_port, start_authz


def fault_config(idp: DevIdentityProvider, port: int, **sections: Any) -> dict[str, Any]:
    """A small config of the shape of config/local.yaml on `port`, audit off."""
    config = service_config(idp, watch=False)
    config["server"] = {"listen": f"127.0.0.1:{port}", "grace_period_s": 2.0, "watch_config": False}
    config["telemetry"] = {"metrics": {"listen": None}, "audit": {"enabled": False}}
    config.update(sections)
    return config


def start_service(
    config: dict[str, Any], workdir: Path, name: str = "authz"
) -> tuple[Process, int, Path]:
    """Write `config` (its server.listen port, or a free one) and start the real process."""
    port = int(config["server"]["listen"].rpartition(":")[2]) or free_port()
    config["server"]["listen"] = f"127.0.0.1:{port}"
    path = write_config(workdir / f"{name}.yaml", config)
    return start_authz(path, port, workdir, name), port, path


def unlimited(config: dict[str, Any]) -> None:
    """Keep Envoy's rate-limit calls but with no limits: a fault test's load is no abuse."""
    config["rate_limit"].pop("config_dir", None)
    config["rate_limit"]["domains"] = [{"domain": "gateway", "descriptors": []}]
