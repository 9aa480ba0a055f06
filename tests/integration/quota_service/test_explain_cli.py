"""`authz-service explain` shows the quota service (RLQS) buckets an allowed request falls in,
and none for a refused one (it never reaches Envoy's quota filters)."""

from __future__ import annotations

import json

import pytest

from authz_service.cli.main import main
from tests.support import REPO_ROOT

CONFIG = str(REPO_ROOT / "config" / "local.yaml")


def test_an_allowed_request_shows_its_rlqs_buckets(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["explain", "--config", CONFIG, "--path", "/public/a", "--source-address", "192.0.2.4"]

    assert main(args) == 0

    out = capsys.readouterr().out
    assert "quota service (RLQS) [remote_address=192.0.2.4]: per-client-ip 600 per 60s" in out


def test_a_refused_request_shows_none(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["explain", "--config", CONFIG, "--path", "/api/orders", "--json"]

    assert main(args) == 0

    document = json.loads(capsys.readouterr().out)
    assert document["decision"] == "unauthenticated"
    assert document["quota_service"] == []
