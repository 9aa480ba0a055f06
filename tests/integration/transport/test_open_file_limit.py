"""The open-file limit is checked at start: raised to the hard limit, and a configuration
whose connection caps cannot fit in it is refused with the numbers to change.

Real service processes, started under a lowered RLIMIT_NOFILE.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.grpc.conftest import service_config
from tests.support.authz_config import write_config
from tests.support.idp import running_idp
from tools.processes import free_port, wait_for_port


def limited(soft: int, hard: int) -> Callable[[], None]:
    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return lower


def serve(config_path: Path, soft: int, hard: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "authz_service", "serve", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=limited(soft, hard),
    )


def config_on_free_port(tmp_path: Path, idp: Any, **server: Any) -> tuple[Path, int]:
    config = service_config(idp, watch=False)
    port = free_port()
    config["server"].update(listen=f"127.0.0.1:{port}", **server)
    return write_config(tmp_path / "authz.yaml", config), port


def test_a_service_whose_connection_caps_exceed_the_open_file_limit_refuses_to_start(
    tmp_path: Path,
) -> None:
    with running_idp() as idp:
        path, _ = config_on_free_port(tmp_path, idp, connections={"max_connections": 5000})
        process = serve(path, 1024, 1024)
        try:
            output, _ = process.communicate(timeout=30)
        finally:
            process.kill()
    assert process.returncode == 1, output
    assert "5000 (server.connections.max_connections)" in output
    assert "the open-file limit is 1024" in output


def test_the_soft_open_file_limit_is_raised_to_the_hard_limit(tmp_path: Path) -> None:
    with running_idp() as idp:
        path, port = config_on_free_port(tmp_path, idp)
        process = serve(path, 512, 4096)
        try:
            wait_for_port(port, process=process)
            limits = Path(f"/proc/{process.pid}/limits").read_text()
        finally:
            process.terminate()
            process.communicate(timeout=30)
    line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    assert line.split()[3:5] == ["4096", "4096"], line
