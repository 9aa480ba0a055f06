"""Descriptor matching, as envoyproxy/ratelimit's GetLimit does it."""

from __future__ import annotations

import pytest

from authz_service.ratelimit.rules import RateLimitRules, compile_rules, parse_domain_document

CONFIG = """
domain: edge
descriptors:
  - key: client_ip
    rate_limit: {unit: minute, requests_per_unit: 60}
  - key: client_ip
    value: 10.0.0.1
    rate_limit: {unit: minute, requests_per_unit: 1000}
  - key: path
    value: /api/*/orders*
    rate_limit: {unit: second, requests_per_unit: 7}
  - key: path
    value: /api/*
    rate_limit: {unit: second, requests_per_unit: 8}
  - key: tenant
    value: acme
  - key: region
    value: eu-*
    share_threshold: true
    rate_limit: {unit: second, requests_per_unit: 9}
  - key: tier
    descriptors:
      - key: user
        rate_limit: {unit: hour, requests_per_unit: 100}
  - key: method
    value: POST
    descriptors:
      - key: path
        rate_limit: {unit: second, requests_per_unit: 2}
"""


@pytest.fixture(scope="module")
def config() -> RateLimitRules:
    return compile_rules([parse_domain_document(CONFIG, "edge.yaml")])


def rpu(config: RateLimitRules, *entries: tuple[str, str], domain: str = "edge") -> int | None:
    limits = config.get_limits(domain, list(entries))
    return limits[0].requests_per_unit if limits else None


def test_key_and_value_beats_key_only(config: RateLimitRules) -> None:
    assert rpu(config, ("client_ip", "10.0.0.1")) == 1000
    assert rpu(config, ("client_ip", "10.0.0.2")) == 60


def test_empty_value_matches_the_key_only_entry(config: RateLimitRules) -> None:
    assert rpu(config, ("client_ip", "")) == 60


def test_wildcard_anywhere_in_the_value_matches_in_file_order(config: RateLimitRules) -> None:
    assert rpu(config, ("path", "/api/v1/orders/42")) == 7
    assert rpu(config, ("path", "/api/v1/users")) == 8
    assert rpu(config, ("path", "/other")) is None


def test_wildcard_matches_the_key_exactly(config: RateLimitRules) -> None:
    assert rpu(config, ("path_extra", "/api/x")) is None


def test_request_deeper_than_the_config_gets_no_limit(config: RateLimitRules) -> None:
    assert rpu(config, ("client_ip", "1.2.3.4"), ("path", "/x")) is None


def test_request_shallower_than_the_config_gets_no_limit(config: RateLimitRules) -> None:
    assert rpu(config, ("tier", "gold")) is None
    assert rpu(config, ("tier", "gold"), ("user", "alice")) == 100


def test_nested_value_then_key_only(config: RateLimitRules) -> None:
    assert rpu(config, ("method", "POST"), ("path", "/a")) == 2
    assert rpu(config, ("method", "GET"), ("path", "/a")) is None


def test_unknown_domain_has_no_limits(config: RateLimitRules) -> None:
    assert rpu(config, ("client_ip", "1.2.3.4"), domain="other") is None


def test_counter_uses_the_request_value_for_a_wildcard(config: RateLimitRules) -> None:
    found = config.match("edge", [("path", "/api/v1/users")])
    assert found is not None and found.counter_entries == (("path", "/api/v1/users"),)


def test_share_threshold_shares_one_counter_across_matching_values(
    config: RateLimitRules,
) -> None:
    first = config.match("edge", [("region", "eu-west")])
    second = config.match("edge", [("region", "eu-north")])
    assert first is not None and second is not None
    assert first.counter_entries == second.counter_entries == (("region", "eu-*"),)


def test_node_without_limit_gives_none(config: RateLimitRules) -> None:
    assert config.match("edge", [("tenant", "acme")]) is None
