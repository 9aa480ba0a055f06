"""One fixture per way a config file can be wrong, each with the exact error an operator sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from authz_service.config.loader import ConfigError, load_config_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "config"

ALGORITHMS = (
    "'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512' or 'EdDSA'"
)


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "bad_yaml.yaml",
            ":6:8: invalid YAML: expected <block end>, but found '<block mapping start>'",
        ),
        (
            "misspelled_field.yaml",
            ":9: identity_headers.strip_credential: unknown field (check the spelling)",
        ),
        ("missing_policies.yaml", ":2: policies: Field required"),
        (
            "default_policy_undefined.yaml",
            ":3: policy_selection.default: Value error, 'public' is not one of the policies: "
            "internal",
        ),
        (
            "allow_and_deny.yaml",
            ":6: policies.default.rules.1: Value error, rule 'confused' needs exactly one of "
            "'allow' or 'deny: true'",
        ),
        (
            "api_key_in_clear.yaml",
            ":5: api_keys.keys.0.hash: Value error, must be 'sha256:' followed by 64 lower-case "
            "hex digits (run `authz-service hash-key` to compute it); keys are never stored in "
            "clear",
        ),
        ("alg_none.yaml", f":6: jwt_providers.0.algorithms.1: Input should be {ALGORITHMS}"),
        ("alg_hs256.yaml", f":7: jwt_providers.0.algorithms.0: Input should be {ALGORITHMS}"),
        (
            "duplicate_rule_names.yaml",
            ":7: policies.default.rules.1.name: Value error, rule names must be unique, "
            "'api' is repeated",
        ),
        (
            "token_source_header_and_cookie.yaml",
            ":8: jwt_providers.0.token_sources.1: Value error, a token source names exactly one "
            "of 'header' or 'cookie'",
        ),
    ],
)
def test_bad_config_error_names_file_line_field_and_problem(fixture: str, expected: str) -> None:
    path = FIXTURES / fixture
    with pytest.raises(ConfigError) as raised:
        load_config_file(path)
    assert str(raised.value) == f"{path}{expected}"


def test_api_key_in_clear_is_not_echoed_in_the_error() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config_file(FIXTURES / "api_key_in_clear.yaml")
    assert "my-secret-api-key" not in str(raised.value)


def test_every_problem_of_a_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(
        "realm: 7\n"
        "policies:\n"
        "  default:\n"
        "    rules:\n"
        "      - name: open\n"
        "        allow: anonymus\n"
        "token_cache_max_entries: -1\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_config_file(path)
    assert str(raised.value).splitlines() == [
        f"{path}:6: policies.default.rules.0.allow: Input should be 'anonymous' or 'authenticated'",
        f"{path}:6: policies.default.rules.0.allow: Input should be a valid dictionary or "
        "instance of Requirement",
        f"{path}:1: realm: Input should be a valid string",
        f"{path}:7: token_cache_max_entries: Input should be greater than or equal to 0",
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", ": the file is empty"),
        (b"- a\n- b\n", ":1: the top level must be a mapping of settings"),
        (b"realm: \xff\n", ": not UTF-8 text"),
    ],
)
def test_unusable_file_is_reported_with_its_name(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as raised:
        load_config_file(path)
    assert str(raised.value) == f"{path}{expected}"


def test_missing_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match=r"absent\.yaml: cannot read: No such file"):
        load_config_file(path)


def test_shipped_local_config_is_valid() -> None:
    loaded = load_config_file(Path(__file__).resolve().parents[3] / "config" / "local.yaml")
    assert set(loaded.config.policies) == {"public", "internal"}
    assert len(loaded.digest) == 64
