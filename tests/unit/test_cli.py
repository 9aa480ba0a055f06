from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from authz_service.cli.main import main
from tests.support.authz_config import api_key_hash, write_config
from tools.dev_idp import DevIdentityProvider

API_KEY = "s3cret-api-key-value"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "authz.yaml",
        {
            "jwt_providers": [
                {
                    "name": "idp",
                    "issuer": "https://idp.example",
                    "audiences": ["api"],
                    # Never fetched here: the tokens below fail before any key is needed.
                    "jwks_uri": "http://127.0.0.1:9/jwks.json",
                }
            ],
            "api_keys": {
                "keys": [
                    {
                        "name": "batch",
                        "hash": api_key_hash(API_KEY),
                        "principal": "svc:batch",
                        "roles": ["internal"],
                    }
                ]
            },
            "policies": {
                "default": {
                    "rules": [
                        {
                            "name": "docs",
                            "match": {"paths": [{"prefix": "/docs/"}]},
                            "allow": "anonymous",
                        },
                        {
                            "name": "internal",
                            "match": {"paths": [{"prefix": "/internal/"}]},
                            "allow": {"roles_any": ["internal"]},
                        },
                    ]
                }
            },
        },
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_check_config_accepts_a_valid_file(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "check-config", str(config_file))
    assert status == 0
    assert f"{config_file}: OK" in out
    assert "1 JWT providers, 1 API keys, policies: default" in out


def test_check_config_rejects_a_bad_file_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("policies:\n  default:\n    rulez: []\n")
    status, out, err = run(capsys, "check-config", str(path))
    assert status == 1
    assert out == ""
    assert err == f"error: {path}:3: policies.default.rulez: unknown field (check the spelling)\n"


def test_explain_shows_the_deciding_rule_and_identity_without_the_api_key(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(
        capsys,
        "explain",
        "--config",
        str(config_file),
        "--path",
        "/internal/jobs",
        "-H",
        f"X-Api-Key: {API_KEY}",
    )
    assert status == 0
    assert "decision:   ALLOW (allowed)" in out
    assert "rule:       internal" in out
    assert "credential: API key from header x-api-key" in out
    assert "svc:batch via api_key" in out
    assert "  docs: skipped: path '/internal/jobs' not matched by prefix /docs/" in out
    assert API_KEY not in out + err


def test_explain_json_reports_a_rejected_token_without_its_value(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = DevIdentityProvider(issuer="https://other.example").mint("alice")
    status, out, err = run(
        capsys,
        "explain",
        "--config",
        str(config_file),
        "--path",
        "/docs/index.html",
        "-H",
        f"Authorization: Bearer {token}",
        "--json",
    )
    assert status == 0
    report: dict[str, Any] = json.loads(out)
    assert report["decision"] == "unauthenticated"
    assert report["reason"] == "unknown_issuer"
    assert report["credential"] == "bearer token from header authorization"
    assert report["identity"] is None
    for secret_part in token.split("."):
        assert secret_part not in out + err


def test_explain_wrong_api_key_is_not_echoed(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(
        capsys, "explain", "--config", str(config_file), "--path", "/internal/x",
        "-H", "x-api-key: wrong-key-value", "--json",
    )  # fmt: skip
    assert status == 0
    assert json.loads(out)["reason"] == "invalid_api_key"
    assert "wrong-key-value" not in out + err


def test_explain_rejects_a_malformed_header_without_echoing_it(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["explain", "--config", str(config_file), "--path", "/", "-H", "x-api-key=" + API_KEY])
    _, err = capsys.readouterr()
    assert exited.value.code == 2
    assert "expected 'name: value'" in err
    assert API_KEY not in err


def test_hash_key_reads_the_key_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(API_KEY + "\n"))
    status, out, _ = run(capsys, "hash-key", "--stdin")
    assert status == 0
    assert out == api_key_hash(API_KEY) + "\n"


def test_hash_key_refuses_an_empty_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    status, out, err = run(capsys, "hash-key", "--stdin")
    assert (status, out, err) == (1, "", "error: empty key\n")


def test_admin_revoke_of_a_token_from_an_unset_variable_is_refused_before_any_call(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AUTHZ_TEST_UNSET_TOKEN", raising=False)
    # Nothing listens at this address: a refusal before the call cannot be a connection error.
    code = main(
        [
            "admin",
            "--address",
            "127.0.0.1:9",
            "revoke",
            "--token-from-env",
            "AUTHZ_TEST_UNSET_TOKEN",
        ]
    )
    assert code == 2
    assert "AUTHZ_TEST_UNSET_TOKEN is not set" in capsys.readouterr().err
