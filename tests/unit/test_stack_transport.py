"""The local stack's `--transport http`: the service config it writes serves the mounts the
HTTP render of envoy/envoy.yaml calls, on granian, at the ports that render uses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from authz_service.config.loader import load_config_file
from tools import stack
from tools.envoy_transports import CLIENT_ADDRESS_HEADER, http_check_mounts
from tools.render_envoy import LOCAL_DEFAULTS, render_mode


def written(tmp_path: Path, transport: str) -> dict[str, object]:
    out = stack._config_writer(
        "http://127.0.0.1:8081/jwks.json", False, tmp_path / "a.yaml", transport=transport
    )()
    config: dict[str, object] = yaml.safe_load(out.read_text())
    load_config_file(out)  # valid as written
    return config


def test_the_http_transport_serves_the_renders_mounts_on_granian(tmp_path: Path) -> None:
    config = written(tmp_path, "http")
    rendered = render_mode(LOCAL_DEFAULTS, transport="http")

    http_check = config["http_check"]
    assert isinstance(http_check, dict)
    assert http_check["server"] == "granian"
    assert http_check["listen"] == f"127.0.0.1:{LOCAL_DEFAULTS['AUTHZ_HTTP_PORT']}"
    assert http_check["endpoints"] == http_check_mounts(rendered)
    assert [e["path"] for e in http_check["endpoints"]] == ["/envoy/public", "/envoy/internal"]
    assert http_check["envoy"] == {"client_address_header": CLIENT_ADDRESS_HEADER}
    # Envoy health-checks /readyz on the observability port the stack opens.
    assert int(LOCAL_DEFAULTS["AUTHZ_METRICS_PORT"]) == stack.METRICS_PORT


def test_the_grpc_transport_opens_no_http_check_port(tmp_path: Path) -> None:
    assert "http_check" not in written(tmp_path, "grpc")


def test_the_command_refuses_an_unknown_transport(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        stack.main(["--transport", "grpc-web"])

    assert exit_info.value.code == 2
    assert "invalid choice: 'grpc-web'" in capsys.readouterr().err
