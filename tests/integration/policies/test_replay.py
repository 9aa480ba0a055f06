"""`authz-service replay` on a real service's audit log: the same config changes nothing, a
tightened candidate reports each decision that would change, grouped by rule and reason."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.grpc.conftest import service_config
from tests.support.authz_config import write_config
from tests.support.authz_server import running_server
from tests.support.idp import running_idp
from tools.dev_idp import DevIdentityProvider


@pytest.fixture(scope="module")
def idp() -> Iterator[DevIdentityProvider]:
    with running_idp() as provider:
        yield provider


def audited(idp: DevIdentityProvider, audit_path: Path) -> dict[str, Any]:
    config = service_config(idp, watch=False)
    config["telemetry"] = {"metrics": {"listen": None}, "audit": {"output": str(audit_path)}}
    config["http_check"] = {"listen": "127.0.0.1:0"}
    return config


async def record_traffic(idp: DevIdentityProvider, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    audit_path = tmp_path / "audit.jsonl"
    config = audited(idp, audit_path)
    path = write_config(tmp_path / "authz.yaml", config)
    reader = {"authorization": f"Bearer {idp.mint('rita', roles=['reader'])}"}
    admin = {"authorization": f"Bearer {idp.mint('ada', roles=['admin'])}"}
    async with running_server(path) as server:
        assert server.http_check is not None
        base = f"http://127.0.0.1:{server.http_check.port}/envoy"
        async with httpx.AsyncClient(timeout=5) as client:
            for target, headers in [
                ("/api/orders?page=2", reader),
                ("/api/orders/7", reader),
                ("/api/orders", admin),
                ("/public/docs", {}),
                ("/admin/users", reader),
                ("/api/orders", {"authorization": "Bearer not.a.token"}),
            ]:
                await client.get(base + target, headers=headers)
    return audit_path, config


def replay(candidate: Path, decisions: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "authz_service",
            "replay",
            "--config",
            str(candidate),
            *(
                "--decisions",
                str(decisions),
            ),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_replaying_under_the_same_config_changes_nothing(
    tmp_path: Path, idp: DevIdentityProvider
) -> None:
    audit_path, config = await record_traffic(idp, tmp_path)

    done = replay(write_config(tmp_path / "same.yaml", config), audit_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 decisions read" in done.stdout and "0 would change, 6 unchanged" in done.stdout


async def test_a_tightened_candidate_reports_each_change_grouped_by_rule_and_reason(
    tmp_path: Path, idp: DevIdentityProvider
) -> None:
    audit_path, config = await record_traffic(idp, tmp_path)
    candidate = copy.deepcopy(config)
    api_rule = candidate["policies"]["public"]["rules"][2]
    assert api_rule["name"] == "api"
    api_rule["allow"] = {"roles_any": ["admin"]}  # readers lose the API

    done = replay(write_config(tmp_path / "candidate.yaml", candidate), audit_path)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 would change, 4 unchanged" in done.stdout
    assert "2 x allow -> forbidden (missing_role) by policy 'public' rule 'api'" in done.stdout
    assert done.stdout.count("by rita") == 2
    assert "page=REDACTED" in done.stdout  # the audit never held the query's value
    assert "not.a.token" not in done.stdout


def test_an_unreadable_line_is_reported_not_fatal(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    log.write_text("not json\n")
    config = Path(__file__).resolve().parents[3] / "config" / "local.yaml"

    done = replay(config, log)

    assert done.returncode == 0
    assert "unreadable lines (1): 1" in done.stdout
