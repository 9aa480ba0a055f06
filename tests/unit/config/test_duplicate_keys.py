"""A key written twice in one mapping is an error naming both lines, never "the last one wins".

PyYAML keeps the last of two equal keys without a word: a second `public:` policy with
`allow: anonymous` silently replaced the first and opened /admin.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from authz_service.config.loader import ConfigError, load_config_file
from authz_service.ratelimit.rules import load_rate_limit_rules

POLICY_TWICE = """\
policy_selection:
  default: public
policies:
  public:
    rules:
      - name: admin-area
        match: {paths: [{prefix: /admin/}]}
        allow: {roles_any: [admin]}
  public:
    rules:
      - name: everything
        allow: anonymous
"""

ISSUER_TWICE = """\
jwt_providers:
  - name: idp
    issuer: https://idp.example
    audiences: [api]
    issuer: https://evil.example
policies:
  default:
    rules: [{name: open, allow: authenticated}]
"""


def test_a_policy_defined_twice_is_refused_with_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "authz.yaml"
    path.write_text(POLICY_TWICE)

    with pytest.raises(ConfigError) as raised:
        load_config_file(path)

    assert str(raised.value) == (
        f"{path}:9: policies.public: duplicate key 'public' (first at {path}:4)"
    )


def test_an_issuer_written_twice_in_one_provider_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "authz.yaml"
    path.write_text(ISSUER_TWICE)

    with pytest.raises(ConfigError) as raised:
        load_config_file(path)

    assert str(raised.value) == (
        f"{path}:5: jwt_providers.0.issuer: duplicate key 'issuer' (first at {path}:3)"
    )


def test_every_duplicate_of_a_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "authz.yaml"
    path.write_text("realm: a\nrealm: b\n" + POLICY_TWICE)

    with pytest.raises(ConfigError) as raised:
        load_config_file(path)

    assert str(raised.value).splitlines() == [
        f"{path}:2: realm: duplicate key 'realm' (first at {path}:1)",
        f"{path}:11: policies.public: duplicate key 'public' (first at {path}:6)",
    ]


def test_keys_equal_as_values_are_duplicates_even_when_spelled_differently(
    tmp_path: Path,
) -> None:
    # YAML 1.1 reads both as the boolean true: the same key for the loader.
    path = tmp_path / "authz.yaml"
    path.write_text("policies:\n  default:\n    rules: []\nrealm:\n  true: 1\n  True: 2\n")

    with pytest.raises(ConfigError, match=r":6: realm.True: duplicate key 'True' \(first at "):
        load_config_file(path)


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "authz.yaml"
    path.write_text(
        "policies:\n"
        "  default:\n"
        "    rules:\n"
        "      - &open {name: open, allow: anonymous}\n"
        "      - <<: *open\n"
        "        name: open-again\n"
    )

    loaded = load_config_file(path)

    assert [rule.name for rule in loaded.config.policies["default"].rules] == [
        "open",
        "open-again",
    ]


def test_a_duplicate_in_a_rate_limit_file_names_the_file_and_both_lines(
    tmp_path: Path,
) -> None:
    limits = tmp_path / "limits"
    limits.mkdir()
    (limits / "gateway.yaml").write_text(
        "domain: gateway\n"
        "descriptors:\n"
        "  - key: user\n"
        "    rate_limit:\n"
        "      unit: minute\n"
        "      requests_per_unit: 10\n"
        "      requests_per_unit: 100000\n"
    )

    with pytest.raises(ConfigError) as raised:
        load_rate_limit_rules(limits)

    gateway = limits / "gateway.yaml"
    assert str(raised.value) == (
        f"{gateway}:7: descriptors.0.rate_limit.requests_per_unit: duplicate key "
        f"'requests_per_unit' (first at {gateway}:6)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # An anchor that contains its own alias.
        ("policies: &a\n  default: {rules: []}\n  loop: *a\n", "policies.loop"),
        ("realm: &a [*a]\npolicies: {default: {rules: []}}\n", "realm"),
        # Nesting deeper than any parser recursion allows.
        ("realm: " + "[" * 20000 + "]" * 20000 + "\n", "invalid YAML: "),
    ],
)
def test_self_referencing_or_absurdly_nested_yaml_is_an_error_not_a_crash(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "authz.yaml"
    path.write_text(text)

    with pytest.raises(ConfigError) as raised:
        load_config_file(path)

    assert str(raised.value).startswith(f"{path}")
    assert expected in str(raised.value)


def test_aliases_repeated_many_times_are_walked_once(tmp_path: Path) -> None:
    # The "billion laughs" shape: each level names the previous one nine times.
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 10):
        previous = f"*a{level - 1}"
        levels.append(f"a{level}: &a{level} [{', '.join([previous] * 9)}]")
    path = tmp_path / "authz.yaml"
    path.write_text("x-anchors:\n" + "".join(f"  {line}\n" for line in levels) + "realm: r\n")

    with pytest.raises(ConfigError, match=r"x-anchors: unknown field"):
        load_config_file(path)
