"""The gateway's quota modes (tools/quota_modes.py): each renders a config Envoy accepts,
the RLQS one passes check-rlqs, and docker-compose's RLQS override mounts its render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from authz_service.cli.main import main
from tests.deploy.conftest import docker_compose, envoy_validate, volume_sources
from tests.support import REPO_ROOT
from tools.dev_cert import generate
from tools.quota_modes import EXT_AUTHZ, MODES, RATELIMIT
from tools.render_envoy import TARGETS, render_mode

COMPOSE_CONFIG = REPO_ROOT / "compose" / "authz" / "config.yaml"


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("tls"))


def http_filters(config: dict[str, Any], listener: str) -> list[str]:
    (found,) = [
        item for item in config["static_resources"]["listeners"] if item["name"] == listener
    ]
    manager = found["filter_chains"][0]["filters"][0]["typed_config"]
    return [item["name"] for item in manager["http_filters"]]


def routes(config: dict[str, Any], listener: str) -> list[dict[str, Any]]:
    (found,) = [
        item for item in config["static_resources"]["listeners"] if item["name"] == listener
    ]
    manager = found["filter_chains"][0]["filters"][0]["typed_config"]
    return [r for host in manager["route_config"]["virtual_hosts"] for r in host["routes"]]


@pytest.mark.envoy
@pytest.mark.parametrize("mode", MODES)
def test_every_quota_mode_passes_envoy_validate(mode: str, tls_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "envoy.yaml"
    config.write_text(render_mode({"TLS_DIR": tls_dir}, mode))

    result = envoy_validate(config)

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.envoy
def test_the_committed_compose_rlqs_render_passes_envoy_validate(
    tls_dir: Path, tmp_path: Path
) -> None:
    target = TARGETS["compose-rlqs"]
    config = tmp_path / "envoy.yaml"
    values = {**target.values, "TLS_DIR": tls_dir}
    config.write_text(render_mode(values, target.quota_mode, target.service_config))

    result = envoy_validate(config)

    assert result.returncode == 0, result.stdout + result.stderr


def test_rlqs_mode_puts_quota_filters_after_ext_authz_and_drops_the_ratelimit_call() -> None:
    config = yaml.safe_load(render_mode({}, "rlqs"))
    public = http_filters(config, "public")
    quota = [name for name in public if name.startswith("envoy.filters.http.rate_limit_quota")]

    assert RATELIMIT not in public
    assert len(quota) == 4  # one per quota_service descriptor of config/local.yaml
    assert public.index(quota[0]) == public.index(EXT_AUTHZ) + 1
    assert all("rate_limits" not in r.get("route", {}) for r in routes(config, "public"))
    # The internal listener had no quota filter and gets none.
    assert not any("rate_limit" in name for name in http_filters(config, "internal"))


def test_rlqs_mode_disables_the_quota_filters_where_the_ratelimit_filter_was() -> None:
    config = yaml.safe_load(render_mode({}, "rlqs"))
    (healthz,) = [r for r in routes(config, "public") if r.get("name") == "healthz"]
    disabled = healthz["typed_per_filter_config"]

    assert RATELIMIT not in disabled
    quota = [name for name in http_filters(config, "public") if "rate_limit_quota" in name]
    assert all(disabled[name]["disabled"] for name in quota)


def test_one_call_mode_has_no_envoy_quota_filter() -> None:
    config = yaml.safe_load(render_mode({}, "one-call"))
    assert not any("rate_limit" in name for name in http_filters(config, "public"))
    assert all("rate_limits" not in r.get("route", {}) for r in routes(config, "public"))


@pytest.mark.parametrize(
    ("service_config", "mode"),
    [(REPO_ROOT / "config" / "local.yaml", "rlqs"), (COMPOSE_CONFIG, "rlqs")],
)
def test_the_rlqs_renders_pass_check_rlqs(
    service_config: Path, mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    envoy = tmp_path / "envoy.yaml"
    envoy.write_text(render_mode({}, mode, service_config))
    # The compose config reads its limits from a container path: point at the shipped ones.
    config = yaml.safe_load(service_config.read_text())
    config["rate_limit"]["config_dir"] = str(REPO_ROOT / "examples" / "ratelimit" / "domains")
    local = tmp_path / "config.yaml"
    local.write_text(yaml.safe_dump(config))

    status = main(["check-rlqs", "--envoy", str(envoy), "--config", str(local), "--strict"])

    out = capsys.readouterr().out
    assert status == 0, out
    assert "4 rate_limit_quota filters, 4 buckets checked: 0 errors, 0 warnings" in out


def test_docker_compose_rlqs_override_mounts_the_rlqs_render() -> None:
    result = docker_compose("-f", "docker-compose.yml", "-f", "compose/quota-rlqs.yml", "config")
    assert result.returncode == 0, result.stderr
    envoy = yaml.safe_load(result.stdout)["services"]["envoy"]
    mounts = volume_sources(envoy)
    assert mounts["/etc/envoy/envoy.yaml"].endswith("envoy/generated/compose-rlqs.yaml")
