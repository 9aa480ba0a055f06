"""Loading envoyproxy/ratelimit YAML: one fixture per failure, each with its exact error."""

from __future__ import annotations

from pathlib import Path

import pytest

from authz_service.config.loader import ConfigError
from authz_service.ratelimit.rules import (
    compile_rules,
    load_domain_file,
    load_rate_limit_rules,
    parse_domain_document,
)
from authz_service.schema import RateLimitSettings

FIXTURES = Path(__file__).parent / "fixtures"

CASES = {
    "misspelled_key.yaml": "6: descriptors.0.rate_limit.request_per_unit: "
    "unknown field (check the spelling)",
    "bad_yaml.yaml": "4:4: invalid YAML: expected <block end>, but found '<block mapping start>'",
    "bad_unit.yaml": "5: descriptors.0.rate_limit.unit: "
    "Input should be 'second', 'minute', 'hour', 'day', 'week', 'month' or 'year'",
    "unlimited_with_unit.yaml": "4: descriptors.0.rate_limit: "
    "Value error, should not specify rate limit unit when unlimited",
    "duplicate_key.yaml": "10: descriptors.1.descriptors.1: "
    "duplicate descriptor composite key 'test.method_GET'",
    "empty_key.yaml": "3: descriptors.0.key: String should have at least 1 character",
    "replaces_self.yaml": "4: descriptors.0.rate_limit: "
    "Value error, replaces should not contain name of same descriptor",
    "missing_unit.yaml": "4: descriptors.0.rate_limit: "
    "Value error, a rate limit needs a 'unit' (second..year) or a 'window' ('30s')",
    "rate_limit_and_rate_limits.yaml": "3: descriptors.0: "
    "Value error, use either 'rate_limit' or 'rate_limits', not both",
    "bad_window.yaml": "4: descriptors.0.rate_limit.window: "
    "Value error, '5 minutes' is not a duration: use a number of seconds or '30s', '5m', '1h'",
    "charge_rejected_token_bucket.yaml": "4: descriptors.0.rate_limit: Value error, "
    "charge_rejected does not apply to a token bucket: a rejected request has no token to spend",
    "quota_mode.yaml": "3: descriptors.0: Value error, quota_mode is not supported",
    "share_threshold_without_wildcard.yaml": "3: descriptors.0: Value error, "
    "share_threshold can only be used with wildcard values (containing '*')",
    "missing_domain.yaml": "1: domain: Field required",
    "negative_requests.yaml": "4: descriptors.0.rate_limit.requests_per_unit: "
    "Input should be greater than or equal to 0",
}


@pytest.mark.parametrize(("name", "expected"), sorted(CASES.items()))
def test_invalid_file_is_rejected_with_file_line_and_field(name: str, expected: str) -> None:
    path = FIXTURES / name
    with pytest.raises(ConfigError) as caught:
        compile_rules([load_domain_file(path)])
    assert str(caught.value) == f"{path}:{expected}"


def test_empty_file_is_rejected() -> None:
    path = FIXTURES / "empty.yaml"
    with pytest.raises(ConfigError) as caught:
        load_domain_file(path)
    assert str(caught.value) == f"{path}: the file is empty"


def test_duplicate_domain_across_files_names_both_files() -> None:
    directory = FIXTURES / "duplicate_domain"
    with pytest.raises(ConfigError) as caught:
        load_rate_limit_rules(directory)
    assert str(caught.value) == (
        f"{directory / 'b.yaml'}:2: domain: duplicate domain 'shared' "
        f"(already defined in {directory / 'a.yaml'})"
    )


def test_config_dir_that_does_not_exist_is_an_error() -> None:
    missing = FIXTURES / "nope"
    with pytest.raises(ConfigError, match="is not a directory"):
        load_rate_limit_rules(missing)


def test_envoyproxy_ratelimit_file_loads_unchanged() -> None:
    config = compile_rules([load_domain_file(FIXTURES / "envoyproxy_example.yaml")])
    assert config.domains == {"mongo_cps"}
    (limit,) = config.get_limits("mongo_cps", [("remote_address", "10.0.0.1")])
    assert (limit.requests_per_unit, limit.unit, limit.window_s) == (10, "second", 1.0)


def test_numeric_yaml_value_is_read_as_text_like_go_yaml() -> None:
    config = compile_rules([load_domain_file(FIXTURES / "envoyproxy_example.yaml")])
    (limit,) = config.get_limits("mongo_cps", [("key2", "200")])
    assert limit.unlimited


def test_units_second_to_year_have_envoyproxy_lengths() -> None:
    text = "domain: d\ndescriptors:\n" + "".join(
        f"  - {{key: k, value: {unit}, rate_limit: {{unit: {unit}, requests_per_unit: 1}}}}\n"
        for unit in ("second", "minute", "hour", "day", "week", "month", "year")
    )
    config = compile_rules([parse_domain_document(text, "units.yaml")])
    windows = [
        config.get_limits("d", [("k", unit)])[0].window_s for unit in ("week", "month", "year")
    ]
    assert windows == [604800.0, 2592000.0, 31536000.0]


def test_extensions_window_algorithm_and_several_limits_compile() -> None:
    text = """
domain: api
descriptors:
  - key: user
    rate_limits:
      - {unit: second, requests_per_unit: 5, algorithm: token_bucket}
      - {window: 5m, requests_per_unit: 100, algorithm: sliding_window, charge_rejected: false}
      - {unit: day, requests_per_unit: 10000, algorithm: gcra}
"""
    config = compile_rules([parse_domain_document(text, "ext.yaml")])
    limits = config.get_limits("api", [("user", "alice")])
    assert [(lim.algorithm, lim.window_s, lim.unit, lim.charge_rejected) for lim in limits] == [
        ("token_bucket", 1.0, "second", False),
        ("sliding_window", 300.0, "minute", False),
        ("token_bucket", 86400.0, "day", False),
    ]
    assert len({lim.counter_tag for lim in limits}) == 3


def test_inline_domains_report_errors_against_the_main_config_file() -> None:
    settings = RateLimitSettings.model_validate(
        {
            "domains": [
                {"domain": "a", "descriptors": [{"key": "k"}, {"key": "k"}]},
            ]
        }
    )
    lines = {("rate_limit", "domains", 0, "descriptors", 1): 42}
    with pytest.raises(ConfigError) as caught:
        load_rate_limit_rules(None, settings.domains, "config.yaml", lines)
    assert str(caught.value) == (
        "config.yaml:42: rate_limit.domains.0.descriptors.1: "
        "duplicate descriptor composite key 'a.k'"
    )
